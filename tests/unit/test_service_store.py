"""Tokens (hashed, constant-time verified, revocable, expiring) and the state database (migrations,
backup/restore)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netscaffold.errors import ConfigError, ValidationError
from netscaffold.service import store as store_mod
from netscaffold.service import tokens
from netscaffold.service.store import MIGRATIONS, SCHEMA_VERSION, Store, backup, restore
from netscaffold.service.tokens import Role


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "state")
    yield s
    s.close()


def test_token_is_stored_hashed_and_verifies(store: Store) -> None:
    with store.transaction() as conn:
        secret, info = tokens.create(conn, Role.OPERATOR, now_s=100.0, ttl_s=None, label="ci")
    raw = (store.path).read_bytes() + Path(f"{store.path}-wal").read_bytes()
    # the secret part follows "<prefix><token id>_" (and may itself contain "_")
    hidden = secret.removeprefix(f"{tokens.PREFIX}{info.token_id}_")
    assert len(hidden) >= 32
    assert hidden.encode() not in raw
    with store.reading() as conn:
        found = tokens.verify(conn, secret, 200.0)
    assert found is not None
    assert found.role is Role.OPERATOR
    assert found.token_id == info.token_id


def test_expired_and_revoked_tokens_fail(store: Store) -> None:
    with store.transaction() as conn:
        short, _ = tokens.create(conn, Role.ADMIN, now_s=100.0, ttl_s=10.0)
        gone, gone_info = tokens.create(conn, Role.ADMIN, now_s=100.0, ttl_s=None)
        tokens.revoke(conn, gone_info.token_id, 150.0)
    with store.reading() as conn:
        assert tokens.verify(conn, short, 105.0) is not None
        assert tokens.verify(conn, short, 110.0) is None
        assert tokens.verify(conn, gone, 120.0) is None
    with store.transaction() as conn, pytest.raises(ValidationError, match="no such token"):
        tokens.revoke(conn, "ffffffffffff", 1.0)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=80))
def test_no_other_string_verifies(tmp_path_factory: pytest.TempPathFactory, guess: str) -> None:
    s = Store(tmp_path_factory.mktemp("tok"))
    try:
        with s.transaction() as conn:
            secret, _ = tokens.create(conn, Role.VIEWER, now_s=0.0, ttl_s=None)
        tampered = secret[:-1] + ("A" if secret[-1] != "A" else "B")
        with s.reading() as conn:
            assert tokens.verify(conn, tampered, 1.0) is None
            if guess != secret:
                assert tokens.verify(conn, guess, 1.0) is None
    finally:
        s.close()


def test_role_order_and_parse() -> None:
    assert Role.VIEWER < Role.OPERATOR < Role.ADMIN
    with pytest.raises(ValidationError, match="unknown role"):
        Role.parse("root")


def test_v1_database_is_migrated_keeping_data(tmp_path: Path) -> None:
    state = tmp_path / "old"
    state.mkdir()
    conn = sqlite3.connect(state / store_mod.DB_NAME)
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO kv (key, value) VALUES ('settings', '{}')")
    conn.executemany(
        "INSERT INTO telemetry (time_s, src, dst, bytes) VALUES (?, 'a', 'b', 1.0)", [(1.0,), (2.0,), (3.0,)]
    )
    conn.execute("DELETE FROM telemetry WHERE seq = 1")
    conn.commit()
    conn.close()
    s = Store(state)
    try:
        with s.reading() as c:
            assert store_mod.schema_version(c) == SCHEMA_VERSION
            assert c.execute("SELECT count(*) FROM models").fetchone()[0] == 0
            assert c.execute("SELECT seq, time_s FROM telemetry ORDER BY seq").fetchall() == [
                (2, 2.0),
                (3, 3.0),
            ]
            indexes = {row[1] for row in c.execute("PRAGMA index_list(telemetry)")}
            assert "telemetry_time" in indexes
        with s.transaction() as c:  # seq goes on from the largest
            c.execute("INSERT INTO telemetry (time_s, src, dst, bytes) VALUES (4.0, 'a', 'b', 1.0)")
        with s.reading() as c:
            assert c.execute("SELECT max(seq) FROM telemetry").fetchone()[0] == 4
        assert s.get_kv("settings") == "{}"
        assert s.revision == s.state_revision == 1
        with s.transaction(ingest=True):
            pass
        assert (s.revision, s.state_revision) == (2, 1)
    finally:
        s.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "new"
    state.mkdir()
    conn = sqlite3.connect(state / store_mod.DB_NAME)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ConfigError, match="newer"):
        Store(state)


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "junk"
    state.mkdir()
    (state / store_mod.DB_NAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ConfigError, match="not a usable state database"):
        Store(state)


def test_backup_and_restore_round_trip(store: Store, tmp_path: Path) -> None:
    with store.transaction() as conn:
        store_mod.put_kv(conn, "topology", "A")
    copy = tmp_path / "backup.db"
    assert backup(store.path.parent, copy) == SCHEMA_VERSION
    with store.transaction() as conn:
        store_mod.put_kv(conn, "topology", "B")
    store.close()
    restore(copy, store.path.parent)
    again = Store(store.path.parent)
    try:
        assert again.get_kv("topology") == "A"
    finally:
        again.close()
    (tmp_path / "bad.db").write_bytes(b"nope" * 1000)
    with pytest.raises(ConfigError, match="not a netscaffold state backup"):
        restore(tmp_path / "bad.db", tmp_path / "elsewhere")
