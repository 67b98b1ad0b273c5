"""Bearer tokens: ``nst_<id>_<secret>``. Only a per-token salt and HMAC-SHA256(salt, secret) are stored;
the secret is shown once. Verification compares digests in constant time and costs the same whether the
id exists or not. Roles are cumulative: viewer < operator < admin."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
from dataclasses import dataclass
from enum import IntEnum

from netscaffold.errors import ValidationError

PREFIX = "nst_"
_TOKEN = re.compile(r"nst_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
_DUMMY_SALT = b"\x00" * 16


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Role:
        try:
            return cls[name.upper()]
        except KeyError:
            raise ValidationError(f"unknown role {name!r} (viewer, operator, admin)", field="role") from None

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    role: Role
    label: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    def usable(self, now_s: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now_s < self.expires_at)

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.token_id,
            "role": self.role.label,
            "label": self.label,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }


def _digest(salt: bytes, secret: str) -> bytes:
    return hmac.new(salt, secret.encode(), hashlib.sha256).digest()


def create(
    conn: sqlite3.Connection, role: Role, *, now_s: float, ttl_s: float | None, label: str = ""
) -> tuple[str, TokenInfo]:
    """A new token: (the secret text, shown once; its stored info)."""
    if ttl_s is not None and not ttl_s > 0:
        raise ValidationError(f"ttl must be > 0 seconds, got {ttl_s}", field="ttl_s")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    expires_at = None if ttl_s is None else now_s + ttl_s
    conn.execute(
        "INSERT INTO tokens (id, role, salt, digest, label, created_at, expires_at) VALUES (?,?,?,?,?,?,?)",
        (token_id, role.label, salt, _digest(salt, secret), label, now_s, expires_at),
    )
    return f"{PREFIX}{token_id}_{secret}", TokenInfo(token_id, role, label, now_s, expires_at, None)


def _info(row: tuple[object, ...]) -> TokenInfo:
    token_id, role, label, created, expires, revoked = row
    return TokenInfo(
        str(token_id),
        Role.parse(str(role)),
        str(label),
        float(created),  # type: ignore[arg-type]
        None if expires is None else float(expires),  # type: ignore[arg-type]
        None if revoked is None else float(revoked),  # type: ignore[arg-type]
    )


_SELECT_ONE = "SELECT id, role, label, created_at, expires_at, revoked_at FROM tokens WHERE id = ?"
_SELECT_ONE_WITH_DIGEST = (
    "SELECT id, role, label, created_at, expires_at, revoked_at, salt, digest FROM tokens WHERE id = ?"
)
_SELECT_ALL = "SELECT id, role, label, created_at, expires_at, revoked_at FROM tokens ORDER BY created_at, id"


def verify(conn: sqlite3.Connection, presented: str, now_s: float) -> TokenInfo | None:
    """The token's info if ``presented`` is a usable token (right secret, not revoked, not expired)."""
    match = _TOKEN.fullmatch(presented)
    token_id, secret = (match.group(1), match.group(2)) if match else ("", presented)
    row = conn.execute(_SELECT_ONE_WITH_DIGEST, (token_id,)).fetchone()
    salt, stored = (bytes(row[6]), bytes(row[7])) if row else (_DUMMY_SALT, b"\x00" * 32)
    ok = hmac.compare_digest(_digest(salt, secret), stored)
    if not (ok and row and match):
        return None
    info = _info(row[:6])
    return info if info.usable(now_s) else None


def revoke(conn: sqlite3.Connection, token_id: str, now_s: float) -> TokenInfo:
    row = conn.execute(_SELECT_ONE, (token_id,)).fetchone()
    if row is None:
        raise ValidationError("no such token", element=f"token {token_id!r}")
    conn.execute("UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", (now_s, token_id))
    return _info(conn.execute(_SELECT_ONE, (token_id,)).fetchone())


def list_tokens(conn: sqlite3.Connection) -> list[TokenInfo]:
    return [_info(row) for row in conn.execute(_SELECT_ALL)]
