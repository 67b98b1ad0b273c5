"""Consistent hashing of pairs onto shards: ownership depends on the key alone, and growing or shrinking the
ring moves only the keys it has to (property tests with hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.distributed.sharding import HashRing, PairShards, key_hash
from netscaffold.errors import ConfigError, ValidationError

node_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.", min_size=1, max_size=12)
pair_lists = st.lists(st.tuples(node_ids, node_ids), min_size=1, max_size=300, unique=True)


def many_pairs(count: int, salt: str) -> list[tuple[str, str]]:
    return [(f"{salt}-src{i}", f"dst{i * 7919 % count}") for i in range(count)]


@settings(max_examples=60, deadline=None)
@given(pairs=pair_lists, extra=st.tuples(node_ids, node_ids), n_shards=st.integers(1, 9))
def test_a_new_pair_lands_on_one_shard_and_moves_no_other(
    pairs: list[tuple[str, str]], extra: tuple[str, str], n_shards: int
) -> None:
    ring = HashRing.of(n_shards)
    before = dict(zip(pairs, ring.pair_owners(pairs).tolist(), strict=True))
    grown = [*pairs, extra] if extra not in before else pairs
    after = dict(zip(grown, ring.pair_owners(grown).tolist(), strict=True))
    assert all(after[p] == shard for p, shard in before.items())
    assert 0 <= after[extra] < n_shards


@settings(max_examples=60, deadline=None)
@given(pairs=pair_lists, n_shards=st.integers(1, 12))
def test_adding_a_shard_moves_keys_only_onto_the_new_shard(
    pairs: list[tuple[str, str]], n_shards: int
) -> None:
    ring = HashRing.of(n_shards)
    grown = ring.with_shard(f"shard-{n_shards}")
    before, after = ring.pair_owners(pairs), grown.pair_owners(pairs)
    moved = before != after
    assert np.all(after[moved] == n_shards)


@settings(max_examples=40, deadline=None)
@given(pairs=pair_lists, n_shards=st.integers(2, 10), data=st.data())
def test_removing_a_shard_moves_only_its_keys(
    pairs: list[tuple[str, str]], n_shards: int, data: st.DataObject
) -> None:
    ring = HashRing.of(n_shards)
    gone = data.draw(st.sampled_from(ring.shards))
    shrunk = ring.without_shard(gone)
    before = [ring.shards[i] for i in ring.pair_owners(pairs)]
    after = [shrunk.shards[i] for i in shrunk.pair_owners(pairs)]
    for old, new in zip(before, after, strict=True):
        assert old in (new, gone)
        assert new != gone


@settings(max_examples=12, deadline=None)
@given(n_shards=st.integers(1, 15), salt=st.text(alphabet="xyz", min_size=1, max_size=4))
def test_growth_moves_about_one_over_n_plus_one_of_the_pairs(n_shards: int, salt: str) -> None:
    """The bound: 20,000 pairs, ``n -> n + 1`` shards moves between 0.5 and 1.5 times ``1 / (n + 1)``
    of them (128 virtual nodes per shard; a modulo hash would move ``n / (n + 1)``)."""
    pairs = many_pairs(20_000, salt)
    before = HashRing.of(n_shards).pair_owners(pairs)
    after = HashRing.of(n_shards + 1).pair_owners(pairs)
    moved = float(np.mean(before != after))
    ideal = 1.0 / (n_shards + 1)
    assert 0.5 * ideal <= moved <= 1.5 * ideal


@pytest.mark.parametrize("n_shards", [2, 4, 8])
def test_shards_are_balanced_within_a_quarter(n_shards: int) -> None:
    split = PairShards.split(many_pairs(40_000, "bal"), HashRing.of(n_shards))
    sizes = np.array(split.sizes())
    assert sizes.sum() == 40_000
    assert np.all(np.abs(sizes / sizes.mean() - 1.0) < 0.25)


def test_split_columns_cover_every_pair_once_in_ascending_order() -> None:
    pairs = many_pairs(1_000, "cols")
    split = PairShards.split(pairs, HashRing.of(3))
    joined = np.concatenate(split.columns)
    assert sorted(joined.tolist()) == list(range(1_000))
    assert all(np.all(np.diff(c) > 0) for c in split.columns)
    assert split.non_empty() == [0, 1, 2]


def test_hash_is_fixed_across_processes_and_owner_is_by_name() -> None:
    # A golden value: BLAKE2b-64 of the flow key, never Python's salted hash().
    assert key_hash("a->b") == 0xEFD9AB267303D550
    ring = HashRing(("east", "west"))
    assert ring.owner("a->b") in ("east", "west")
    assert ring.owner("a->b") == HashRing(("east", "west")).owner("a->b")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: HashRing.of(0), "shards must be >= 1"),
        (lambda: HashRing(()), "at least one shard"),
        (lambda: HashRing(("a", "a")), "duplicate shard name"),
        (lambda: HashRing(("a",), vnodes=0), "vnodes must be >= 1"),
        (lambda: HashRing.of(2).with_shard("shard-1"), "already on the ring"),
        (lambda: HashRing.of(2).without_shard("nope"), "not on the ring"),
    ],
)
def test_bad_rings_are_config_errors(make: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()  # type: ignore[operator]


def test_no_pairs_is_a_validation_error() -> None:
    with pytest.raises(ValidationError, match="no pair to shard"):
        PairShards.split([], HashRing.of(2))
