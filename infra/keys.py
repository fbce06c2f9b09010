"""API keys: random, shown once, stored only as a SHA-256 digest, each with one role."""

import getpass
import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from infra.dialect import Dialect, database_now, read_rows
from infra.seal import RecordedBy
from infra.store import LogStore

KEY_PREFIX = "clk_"
# How long a verified key is trusted without asking the database again. Every request used to
# read its key's row; a key revoked in the database is refused within this many seconds.
KEY_CACHE_SECONDS = 5.0
KEY_CACHE_SIZE = 1024
_clock = time.monotonic  # the cache's clock, alone: tests move it without moving asyncio's


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    AUDITOR = "auditor"
    ADMIN = "admin"
    WITNESS = "witness"  # an outside witness: reads, and cosigns the tree's checkpoints


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    AUDIT = "audit"
    ADMIN = "admin"
    COSIGN = "cosign"
    REVIEW = "review"  # record a decision on a finding (never a verdict)


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ}),
    Role.WRITER: frozenset({Permission.READ, Permission.WRITE, Permission.REVIEW}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT, Permission.REVIEW}),
    Role.ADMIN: frozenset(Permission),
    Role.WITNESS: frozenset({Permission.READ, Permission.COSIGN}),
}


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    @property
    def recorded_by(self) -> RecordedBy:
        """How the events this key appends say who recorded them."""
        return RecordedBy(self.key_id, self.name, self.role.value)


def command_line_user() -> RecordedBy:
    """Who records what a `chipledger` command appends: the operating system's user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        user = f"uid-{os.getuid()}"
    return RecordedBy(f"cli:{user}", user, "cli")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKeyRow:
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyTable:
    """The keys' rows: their digests, never the keys."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.table = dialect.api_keys_table

    def add(self, key_id: str, name: str, role: str, key_hash: str) -> None:
        now = database_now(self.dialect)  # before the write: see database_now
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(
                self.dialect.sql(f"INSERT INTO {self.table} (key_id, name, role, key_hash, "
                                 "created_at) VALUES (%s, %s, %s, %s, %s)"),
                (key_id, name, role, key_hash, self.dialect.to_db_time(now)),
            )

    def find(self, key_hash: str) -> ApiKeyRow | None:
        rows = read_rows(self.dialect, f"SELECT key_id, name, role, created_at FROM "
                         f"{self.table} WHERE key_hash = %s AND revoked_at IS NULL",
                         (key_hash,))
        if not rows:
            return None
        r = rows[0]
        return ApiKeyRow(r["key_id"], r["name"], r["role"],
                         self.dialect.from_db_time(r["created_at"]))

    def all(self) -> list[ApiKeyRow]:
        """Every key, revoked ones too, oldest first: ids, names, roles and times, never
        their hashes."""
        return [self._row(r) for r in read_rows(
            self.dialect, f"SELECT key_id, name, role, created_at, revoked_at FROM "
            f"{self.table} ORDER BY created_at, key_id")]

    def revoke(self, key_id: str) -> ApiKeyRow | None:
        """Revoke a key (a revoked key keeps the time it was first revoked); the key as it
        now is, or None when there is no key with this id."""
        now = database_now(self.dialect)  # before the write, as in add
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"UPDATE {self.table} SET revoked_at = %s "
                "WHERE key_id = %s AND revoked_at IS NULL"),
                (self.dialect.to_db_time(now), key_id))
        rows = read_rows(self.dialect, f"SELECT key_id, name, role, created_at, revoked_at "
                         f"FROM {self.table} WHERE key_id = %s", (key_id,))
        return self._row(rows[0]) if rows else None

    def _row(self, row: Any) -> ApiKeyRow:
        revoked = row["revoked_at"]
        return ApiKeyRow(row["key_id"], row["name"], row["role"],
                         self.dialect.from_db_time(row["created_at"]),
                         self.dialect.from_db_time(revoked) if revoked is not None else None)


class KeyRing:
    def __init__(self, store: LogStore, *, ttl: float = KEY_CACHE_SECONDS) -> None:
        self.keys = ApiKeyTable(store.dialect)
        self.ttl = ttl
        # digest -> (principal, trusted until on the monotonic clock); only valid keys are kept
        self._verified: dict[str, tuple[Principal, float]] = {}

    def create(self, role: Role, name: str = "") -> tuple[str, str]:
        """Make a key; returns (key_id, key). The key itself is never stored."""
        key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self.keys.add(key_id, name or f"{role}-{key_id}", role.value, digest(key))
        return key_id, key

    def all_keys(self) -> list[ApiKeyRow]:
        return self.keys.all()

    def revoke(self, key_id: str) -> ApiKeyRow | None:
        """Revoke a key: every server refuses it once its cache (`ttl`) lets go of it. None
        when no key has this id."""
        return self.keys.revoke(key_id)

    def recently_verified(self, key: str) -> Principal | None:
        """The key's principal if it was found valid in the last `ttl` seconds; no I/O, so
        an event loop may call it. None means: ask `authenticate`."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        found = self._verified.get(digest(key))
        if found is None or found[1] < _clock():
            return None
        return found[0]

    def authenticate(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        key_hash = digest(key)
        row = self.keys.find(key_hash)
        if row is None:
            self._verified.pop(key_hash, None)
            return None
        principal = Principal(row.key_id, row.name, Role(row.role))
        if self.ttl > 0:
            if len(self._verified) >= KEY_CACHE_SIZE:
                self._verified.clear()  # many keys at once is rare; start over, stay bounded
            self._verified[key_hash] = (principal, _clock() + self.ttl)
        return principal
