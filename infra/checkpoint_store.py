"""Where checkpoints are kept (their own append-only table) and the database's one signing
key: registered by the first process to sign, checked by every later one (`signing_key_for`,
the one place a signing key is loaded and checked)."""

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog

from infra.checkpoint_keys import Checkpoint, SigningKey
from infra.dialect import Dialect, database_now
from infra.needs import SigningNeeds
from infra.seal import format_time, parse_time
from infra.store import LogStore

log = structlog.get_logger("chipledger.checkpoints")


class CheckpointStore:
    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.dialect = store.dialect

    def latest(self) -> Checkpoint | None:
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.sql(
                f"SELECT body FROM {self.dialect.checkpoints_table} "
                "ORDER BY position DESC LIMIT 1"))
            row = cursor.fetchone()
        return Checkpoint.from_json(json.loads(row["body"])) if row else None

    def add(self, checkpoint: Checkpoint) -> None:
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"INSERT INTO {self.dialect.checkpoints_table} (position, hash, signed_at, "
                "body) VALUES (%s, %s, %s, %s)"),
                (checkpoint.position, checkpoint.hash,
                 self.dialect.to_db_time(parse_time(checkpoint.signed_at)),
                 json.dumps(checkpoint.to_json(), sort_keys=True)))


class SigningKeyMismatchError(Exception):
    """This process holds a signing key other than the one its database signs with."""


@dataclass(frozen=True)
class RegisteredKey:
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 key
    registered_at: datetime


def signing_key_for(container: SigningNeeds) -> SigningKey:
    """The key this process signs with, and the one place it is loaded and checked: the key
    file's (created on first start), which must be the key the database registered (on its
    first start). Every process that signs for one database thus uses one key."""
    path = signing_key_path(container)
    key = SigningKey.load_or_create(path)
    registered = KeyRegistry(container.store).register(key)
    if (registered.key_id, registered.public_key) != \
            (key.key_id, base64.b64encode(key.public_raw).decode()):
        raise SigningKeyMismatchError(
            f"the signing key in {path} (key id {key.key_id}) is not this database's signing "
            f"key {registered.key_id} (registered {format_time(registered.registered_at)}): "
            "give every process on this database the same key file "
            "(CHIPLEDGER_SIGNING_KEY_FILE)")
    return key


class KeyRegistry:
    """The public half of the database's one signing key, in a one-row table that refuses
    edits (as the log does)."""

    def __init__(self, store: LogStore) -> None:
        self.store = store
        self.dialect: Dialect = store.dialect

    def registered(self) -> RegisteredKey | None:
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT key_id, public_key, registered_at FROM "
                           f"{self.dialect.signing_key_table}")
            row = cursor.fetchone()
        if row is None:
            return None
        return RegisteredKey(row["key_id"], row["public_key"],
                             self.dialect.from_db_time(row["registered_at"]))

    def register(self, key: SigningKey) -> RegisteredKey:
        """The registered key, registered first if none is: the key of the latest checkpoint
        when there is one (signed before keys were registered), else `key`. Processes
        starting together register one: the first insert wins, the others read it."""
        found = self.registered()
        if found is not None:
            return found
        latest = CheckpointStore(self.store).latest()
        key_id, public = (latest.key_id, latest.public_key) if latest else \
            (key.key_id, base64.b64encode(key.public_raw).decode())
        now = database_now(self.dialect)  # before the write: see database_now
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"INSERT INTO {self.dialect.signing_key_table} (singleton, key_id, public_key, "
                "registered_at) VALUES (1, %s, %s, %s) ON CONFLICT (singleton) DO NOTHING"),
                (key_id, public, self.dialect.to_db_time(now)))
        found = self.registered()
        assert found is not None, "a registered key is never removed"
        log.info("signing_key_registered", key_id=found.key_id)
        return found


def signing_key_path(container: SigningNeeds) -> Path:
    """The configured key file, else the backend's place for it (beside a SQLite file)."""
    configured = container.settings.signing_key_file
    return Path(configured) if configured else container.backend.signing_key_path()
