"""The workbench's sign-in sessions: an opaque token in a cookie, mapped here to an API key.

Only digests are stored: the token's (so a copy of the table opens no session) and the key's
(the api keys table's own digest, so a revoked key ends its sessions at once). A session
expires after `idle_seconds` without a request; each request moves its last-seen time on.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.keys import ApiKeyTable, Principal, Role
from infra.store import LogStore

# The key digest of a session opened while auth is disabled: it maps to no key.
NO_KEY = "auth-disabled"


@dataclass(frozen=True)
class UiSession:
    principal: Principal
    csrf_token: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UiSessions:
    def __init__(self, store: LogStore, idle_seconds: float, *, auth_disabled: bool = False
                 ) -> None:
        self.store = store
        self.auth_disabled = auth_disabled
        self.dialect = store.dialect
        self.idle_seconds = idle_seconds
        self.table = self.dialect.ui_sessions_table

    def open(self, key_hash: str, principal: Principal) -> str:
        """A new session for a verified key; returns its token (for the cookie only)."""
        token = secrets.token_urlsafe(32)
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"INSERT INTO {self.table} (token_hash, key_hash, key_id, name, role, "
                "csrf_token, last_seen) VALUES (%s, %s, %s, %s, %s, %s, %s)"),
                (_digest(token), key_hash, principal.key_id, principal.name,
                 principal.role.value, secrets.token_urlsafe(32), self._now()))
        return token

    def find(self, token: str) -> UiSession | None:
        """The session of a cookie, its idle clock moved on; None when unknown, idle too long,
        or its key was revoked."""
        if not token or len(token) > 100:
            return None
        row = self._row(_digest(token))
        if row is None:
            return None
        idle = datetime.now(UTC) - self.dialect.from_db_time(row["last_seen"])
        if idle > timedelta(seconds=self.idle_seconds) or not self._key_valid(row["key_hash"]):
            self.close(token)
            return None
        self._touch(_digest(token))
        principal = Principal(row["key_id"], row["name"], Role(row["role"]))
        return UiSession(principal, row["csrf_token"])

    def close(self, token: str) -> None:
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(f"DELETE FROM {self.table} WHERE token_hash = %s"),
                           (_digest(token),))

    def _row(self, token_hash: str) -> dict[str, Any] | None:
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.sql(
                f"SELECT key_hash, key_id, name, role, csrf_token, last_seen FROM {self.table} "
                "WHERE token_hash = %s"), (token_hash,))
            row = cursor.fetchone()
        return dict(row) if row is not None else None

    def _key_valid(self, key_hash: object) -> bool:
        if key_hash == NO_KEY:  # opened while auth was off: void once it is on again
            return self.auth_disabled
        return ApiKeyTable(self.dialect).find(str(key_hash)) is not None

    def _touch(self, token_hash: str) -> None:
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"UPDATE {self.table} SET last_seen = %s WHERE token_hash = %s"),
                (self._now(), token_hash))

    def _now(self) -> Any:
        return self.dialect.to_db_time(datetime.now(UTC))
