"""An indexed binary min-heap over item ids, for numba: items can be re-keyed or removed in O(log n).

Order: ``(k1[item], k2[item], k3[item])`` lexicographically (a float key and two integer tie-breakers), so
that equal times pop in a documented, deterministic order. ``size`` is a one-element array.
"""

# ruff: noqa: PLR0917  (numba nopython functions take their packed arrays positionally: no
# keyword-only parameters there)

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from netscaffold.backends.sim.jitcache import compiled

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@compiled(inline="always")
def less(k1: FloatArray, k2: IntArray, k3: IntArray, a: int, b: int) -> bool:
    if k1[a] != k1[b]:
        return bool(k1[a] < k1[b])
    if k2[a] != k2[b]:
        return bool(k2[a] < k2[b])
    return bool(k3[a] < k3[b])


@compiled(inline="always")
def sift_up(heap: IntArray, pos: IntArray, k1: FloatArray, k2: IntArray, k3: IntArray, i: int) -> None:
    item = heap[i]
    while i > 0:
        parent = (i - 1) >> 1
        above = heap[parent]
        if not less(k1, k2, k3, item, above):
            break
        heap[i] = above
        pos[above] = i
        i = parent
    heap[i] = item
    pos[item] = i


@compiled(inline="always")
def sift_down(
    heap: IntArray, pos: IntArray, size: int, k1: FloatArray, k2: IntArray, k3: IntArray, i: int
) -> None:
    item = heap[i]
    while True:
        child = 2 * i + 1
        if child >= size:
            break
        right = child + 1
        if right < size and less(k1, k2, k3, heap[right], heap[child]):
            child = right
        if not less(k1, k2, k3, heap[child], item):
            break
        heap[i] = heap[child]
        pos[heap[i]] = i
        i = child
    heap[i] = item
    pos[item] = i


@compiled(inline="always")
def push(
    heap: IntArray, pos: IntArray, size: IntArray, k1: FloatArray, k2: IntArray, k3: IntArray, item: int
) -> None:
    i = size[0]
    size[0] = i + 1
    heap[i] = item
    pos[item] = i
    sift_up(heap, pos, k1, k2, k3, i)


@compiled(inline="always")
def remove(
    heap: IntArray, pos: IntArray, size: IntArray, k1: FloatArray, k2: IntArray, k3: IntArray, item: int
) -> None:
    i = pos[item]
    last = heap[size[0] - 1]
    size[0] -= 1
    pos[item] = -1
    if i < size[0]:
        heap[i] = last
        pos[last] = i
        sift_down(heap, pos, size[0], k1, k2, k3, i)
        sift_up(heap, pos, k1, k2, k3, pos[last])


@compiled(inline="always")
def rekey(
    heap: IntArray, pos: IntArray, size: IntArray, k1: FloatArray, k2: IntArray, k3: IntArray, item: int
) -> None:
    """Restore order after ``item``'s keys changed (push it when it is not in the heap)."""
    if pos[item] < 0:
        push(heap, pos, size, k1, k2, k3, item)
        return
    sift_up(heap, pos, k1, k2, k3, pos[item])
    sift_down(heap, pos, size[0], k1, k2, k3, pos[item])
