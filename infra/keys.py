"""API keys: random, shown once, stored only as a SHA-256 digest, each with one role."""

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from infra.store import ApiKeyRow, LogStore

KEY_PREFIX = "clk_"


class Role(StrEnum):
    READER = "reader"
    WRITER = "writer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    WRITE = "write"
    AUDIT = "audit"
    ADMIN = "admin"


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.READER: frozenset({Permission.READ}),
    Role.WRITER: frozenset({Permission.READ, Permission.WRITE}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    def __init__(self, store: LogStore) -> None:
        self.store = store

    def create(self, role: Role, name: str = "") -> tuple[str, str]:
        """Make a key; returns (key_id, key). The key itself is never stored."""
        key_id = secrets.token_hex(4)
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        self.store.add_api_key(key_id, name or f"{role}-{key_id}", role.value, digest(key))
        return key_id, key

    def authenticate(self, key: str) -> Principal | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        row: ApiKeyRow | None = self.store.find_api_key(digest(key))
        if row is None:
            return None
        return Principal(row.key_id, row.name, Role(row.role))
