"""The service's state database: SQLite in WAL mode under ``--state``, schema versioned with migrations.

Every acknowledged write is one committed transaction before the response leaves, so a ``kill -9`` and a
restart lose nothing that was acknowledged (WAL with ``synchronous=NORMAL`` is durable against process
crashes; ``FULL`` adds durability against power loss and is one setting away). The schema version lives in
``PRAGMA user_version``; :data:`MIGRATIONS` upgrade an older database in place, a newer one is refused.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from netscaffold.errors import ConfigError

DB_NAME = "state.db"

MIGRATIONS: tuple[str, ...] = (
    # v1: the original schema
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY, role TEXT NOT NULL, salt BLOB NOT NULL, digest BLOB NOT NULL,
        label TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL, expires_at REAL, revoked_at REAL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, target TEXT NOT NULL DEFAULT '', detail TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE plans (
        id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, status TEXT NOT NULL,
        source TEXT NOT NULL, base_digest TEXT NOT NULL, result_digest TEXT NOT NULL, ops TEXT NOT NULL,
        realized TEXT NOT NULL DEFAULT '{}', applied_at REAL, rolled_back_at REAL, error TEXT
    );
    CREATE TABLE telemetry (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time_s REAL NOT NULL, src TEXT NOT NULL,
        dst TEXT NOT NULL, bytes REAL NOT NULL
    );
    CREATE TABLE routing (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, time_s REAL NOT NULL, body TEXT NOT NULL
    );
    """,
    # v2: model checkpoints and a time index on telemetry
    """
    CREATE TABLE models (
        name TEXT PRIMARY KEY, checkpoint TEXT NOT NULL, trained_at REAL NOT NULL,
        steps INTEGER NOT NULL, retrains INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX telemetry_time ON telemetry (time_s);
    """,
    # v3: telemetry without AUTOINCREMENT (its bookkeeping was ~40% of the insert cost per sample); rows
    # are only ever deleted oldest first, so a new seq is still one past the largest ever given
    """
    CREATE TABLE telemetry_v3 (
        seq INTEGER PRIMARY KEY, time_s REAL NOT NULL, src TEXT NOT NULL, dst TEXT NOT NULL,
        bytes REAL NOT NULL
    );
    INSERT INTO telemetry_v3 (seq, time_s, src, dst, bytes)
        SELECT seq, time_s, src, dst, bytes FROM telemetry;
    DROP TABLE telemetry;
    ALTER TABLE telemetry_v3 RENAME TO telemetry;
    CREATE INDEX telemetry_time ON telemetry (time_s);
    """,
    # v4: orchestrator events are read by kind on every forecast, among many flow requests
    """
    CREATE INDEX routing_kind_time ON routing (kind, time_s);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, *, where: str) -> int:
    """Bring ``conn`` to :data:`SCHEMA_VERSION`; returns the version found. Each step is one transaction."""
    found = schema_version(conn)
    if found > SCHEMA_VERSION:
        raise ConfigError(
            f"state schema version {found} is newer than this netscaffold's {SCHEMA_VERSION}", file=where
        )
    for version in range(found, SCHEMA_VERSION):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
    return found


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, foreign keys, busy timeout."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"not a usable state database: {exc}", file=str(path)) from None
    return conn


class Store:
    """A writer connection and a reader connection, each shared by the service's threads behind its own
    lock: in WAL mode a read sees the last committed state without waiting for a write in progress (a
    5,000-sample ingest holds the writer for tens of ms). ``transaction()`` is all or nothing.

    ``revision`` counts committed transactions and ``state_revision`` those that were not telemetry or
    routing ingest: a cached read made at revision r is current while the counter is still r."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_NAME
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        try:
            migrate(self._conn, where=str(self.path))
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ConfigError(f"not a usable state database: {exc}", file=str(self.path)) from None
        self._reader = connect(self.path)
        self._read_lock = threading.RLock()
        self.revision = 0
        self.state_revision = 0

    @contextmanager
    def transaction(self, *, ingest: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` .. ``COMMIT``; ``ingest`` marks a telemetry or routing-information batch
        (it leaves ``state_revision`` alone)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            self.revision += 1
            if not ingest:
                self.state_revision += 1

    def changed(self) -> None:
        """Move both revisions without a transaction: for in-memory state that follows a commit (a read
        cached between the commit and that update would otherwise look current)."""
        with self._lock:
            self.revision += 1
            self.state_revision += 1

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """The reader connection (committed state only; never write through it)."""
        with self._read_lock:
            yield self._reader

    def get_kv(self, key: str) -> str | None:
        with self.reading() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._conn.close()


def put_kv(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
        (key, value, value),
    )


def audit(
    conn: sqlite3.Connection, at: float, actor: str, action: str, *, target: str = "", detail: str = ""
) -> None:
    conn.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        (at, actor, action, target, detail),
    )


def backup(state_dir: Path, dest: Path) -> int:
    """A consistent copy of the state database (SQLite online backup); returns the schema version."""
    source = state_dir / DB_NAME
    if not source.is_file():
        raise ConfigError("no state database here", file=str(source))
    src = connect(source)
    try:
        version = schema_version(src)
        dest.parent.mkdir(parents=True, exist_ok=True)
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()
    return version


def restore(backup_file: Path, state_dir: Path) -> int:
    """Replace the state under ``state_dir`` with ``backup_file`` (service stopped); migrates it."""
    if not backup_file.is_file():
        raise ConfigError("no such backup file", file=str(backup_file))
    src = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        try:
            version = schema_version(src)
            src.execute("SELECT count(*) FROM tokens").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"not a netscaffold state backup: {exc}", file=str(backup_file)) from None
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"backup schema {version} is newer than {SCHEMA_VERSION}", file=str(backup_file)
            )
        state_dir.mkdir(parents=True, exist_ok=True)
        target = state_dir / DB_NAME
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        out = sqlite3.connect(target)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()
    conn = connect(target)
    try:
        migrate(conn, where=str(target))
    finally:
        conn.close()
    return version
