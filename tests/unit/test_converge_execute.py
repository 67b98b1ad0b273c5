"""``converge.execute``: nodes converge in parallel (one thread per core), each node's steps in order, and
the failure of the lowest step index is the one raised. Steps here are empty nft steps (they touch no
kernel); the ``before_step`` hook observes and injects."""

from __future__ import annotations

import threading

import pytest

from netscaffold.backends.linux import converge
from netscaffold.backends.linux.converge import Step, StepError, execute


def _steps(*nodes: str) -> list[Step]:
    return [Step(node, f"ns-{node}", "nft") for node in nodes]


def test_two_nodes_converge_at_once_when_there_are_two_cores() -> None:
    if converge.EXEC_WORKERS < 2:
        pytest.skip(f"{converge.EXEC_WORKERS} converging thread on this machine: nodes run one at a time")
    both_in_flight = threading.Barrier(2, timeout=5.0)  # breaks (and the test fails) if run one by one
    seen: list[str] = []

    def hook(index: int, step: Step) -> None:
        both_in_flight.wait()
        seen.append(step.node)

    execute(_steps("a", "b"), hook)
    assert sorted(seen) == ["a", "b"]


def test_a_node_stops_at_its_failing_step_and_the_lowest_failure_is_raised() -> None:
    called: list[int] = []

    def hook(index: int, step: Step) -> None:
        called.append(index)
        if index in (0, 2):
            raise OSError(f"injected at {index}")

    steps = _steps("a", "a", "b", "b")  # indices 0 and 1 on node a, 2 and 3 on node b
    started: set[str] = set()
    with pytest.raises(StepError) as failure:
        execute(steps, hook, started=started)
    assert failure.value.step is steps[0]
    assert "injected at 0" in str(failure.value)
    assert 1 not in called  # a's second step never starts after its first failed
    assert 3 not in called  # nor b's after b's failed (or b never started)
    assert "a" in started
