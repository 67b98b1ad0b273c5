"""Pairs (and devices) partitioned into shards by consistent hashing on their key.

A :class:`HashRing` places ``vnodes`` points per shard on a 64-bit ring (BLAKE2b of ``"shard#i"``); a key
belongs to the first shard point at or after its own hash (Karger et al. 1997). The owner of a key depends
only on the key and the set of shards, so

* a new pair lands on one shard and no other pair moves;
* adding a shard moves only keys *to* the new shard (about ``1 / (n + 1)`` of them); removing one moves
  only the keys it held.

The key of a pair is its flow key ``"src->dst"`` (:func:`netscaffold.model.config.flow_key`). Hashes come
from :mod:`hashlib`, never Python's ``hash`` (salted per process), so every process and every node of a
Ray cluster computes the same owner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from netscaffold.errors import ConfigError, ValidationError
from netscaffold.model.config import flow_key

IntArray = npt.NDArray[np.int64]
UIntArray = npt.NDArray[np.uint64]
Pair = tuple[str, str]
DEFAULT_VNODES = 128


def key_hash(key: str) -> int:
    """The 64-bit ring position of ``key`` (stable across processes and machines)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def key_hashes(keys: Iterable[str]) -> UIntArray:
    return np.fromiter((key_hash(k) for k in keys), dtype=np.uint64)


@dataclass(frozen=True)
class HashRing:
    """A consistent-hash ring over named shards (``shards`` in the order shard indices refer to)."""

    shards: tuple[str, ...]
    vnodes: int = DEFAULT_VNODES
    _points: UIntArray = field(init=False, repr=False, compare=False)
    _owners: IntArray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.shards:
            raise ConfigError("a hash ring needs at least one shard", field="shards")
        if len(set(self.shards)) != len(self.shards):
            raise ConfigError(f"duplicate shard name in {list(self.shards)}", field="shards")
        if self.vnodes < 1:
            raise ConfigError(f"vnodes must be >= 1, got {self.vnodes}", field="vnodes")
        names = [f"{name}#{i}" for name in self.shards for i in range(self.vnodes)]
        points = key_hashes(names)
        owners = np.repeat(np.arange(len(self.shards), dtype=np.int64), self.vnodes)
        order = np.lexsort((owners, points))  # ties (never seen in practice) go to the lower index
        object.__setattr__(self, "_points", points[order])
        object.__setattr__(self, "_owners", owners[order])

    @classmethod
    def of(cls, n_shards: int, *, vnodes: int = DEFAULT_VNODES, prefix: str = "shard") -> HashRing:
        """``n_shards`` shards named ``shard-0 .. shard-{n-1}``: growing ``n`` keeps the earlier names."""
        if n_shards < 1:
            raise ConfigError(f"shards must be >= 1, got {n_shards}", field="shards")
        return cls(tuple(f"{prefix}-{i}" for i in range(n_shards)), vnodes)

    @property
    def n_shards(self) -> int:
        return len(self.shards)

    def owner_of_hashes(self, hashes: UIntArray) -> IntArray:
        """Shard index of each ring position."""
        slot = np.searchsorted(self._points, hashes, side="left")
        return np.asarray(self._owners[slot % self._points.size], dtype=np.int64)

    def owners(self, keys: Iterable[str]) -> IntArray:
        """Shard index of each key."""
        return self.owner_of_hashes(key_hashes(keys))

    def owner(self, key: str) -> str:
        """The shard name that owns ``key``."""
        return self.shards[int(self.owners([key])[0])]

    def pair_owners(self, pairs: Sequence[Pair]) -> IntArray:
        """Shard index of each pair, keyed on its flow key ``src->dst``."""
        return self.owners(flow_key(src, dst) for src, dst in pairs)

    def with_shard(self, name: str) -> HashRing:
        if name in self.shards:
            raise ConfigError(f"shard {name!r} is already on the ring", field="shards")
        return HashRing((*self.shards, name), self.vnodes)

    def without_shard(self, name: str) -> HashRing:
        if name not in self.shards:
            raise ConfigError(f"shard {name!r} is not on the ring", field="shards")
        return HashRing(tuple(s for s in self.shards if s != name), self.vnodes)


@dataclass(frozen=True, eq=False)
class PairShards:
    """The pairs of a series split by a ring: ``columns[i]`` are the column indices (ascending) of the
    pairs that shard ``i`` owns. Empty shards are kept, so indices match the ring's."""

    ring: HashRing
    n_pairs: int
    columns: tuple[IntArray, ...]

    @classmethod
    def split(cls, pairs: Sequence[Pair], ring: HashRing) -> PairShards:
        if not pairs:
            raise ValidationError("no pair to shard", field="pairs")
        owner = ring.pair_owners(pairs)
        columns = tuple(np.flatnonzero(owner == i).astype(np.int64) for i in range(ring.n_shards))
        return cls(ring, len(pairs), columns)

    def sizes(self) -> list[int]:
        return [int(c.size) for c in self.columns]

    def non_empty(self) -> list[int]:
        return [i for i, c in enumerate(self.columns) if c.size]
