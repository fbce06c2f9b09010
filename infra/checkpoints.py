"""Signed checkpoints of the log's head, and verification against them.

The service signs (position, hash, recorded_at) of its head with an Ed25519 key kept in a file
outside the event log, generated on first start. Checkpoints live in their own append-only
table: they are not events and never move the head. An auditor who kept an earlier checkpoint
can prove the current log extends the one they saw: the chain up to that position is unchanged.

Two rules keep a signature meaningful. One key per database: the first process to sign for a
database registers its public key there, and a process holding another key does not start
(`signing_key_for`, the one place a signing key is loaded and checked). Signatures only over
extensions: the head is signed only if it extends the latest checkpoint; otherwise the
checkpoint is refused and an integrity alarm raised (`Checkpointer.checkpoint_now`).
"""

import base64
import hashlib
import itertools
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import structlog
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from domain.errors import Conflict
from infra.alarms import Alarms
from infra.dialect import Dialect, database_now
from infra.lead import Backend
from infra.seal import ALGORITHM, format_time, parse_time
from infra.settings import Settings
from infra.store import LogEntry, LogStore
from infra.verify import ChainRow, Sealed, Verification, verify_chain, verify_rows

log = structlog.get_logger("chipledger.checkpoints")
SIGNATURE_ALGORITHM = "ed25519"
# The alarm a head that does not extend the latest checkpoint raises (see infra.alarms).
ALARM_COMPONENT, ALARM_KEY = "integrity", "checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    position: int
    hash: str
    recorded_at: str  # the head event's recorded_at
    signed_at: str
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 key
    signature: str  # base64 of the signature over `signed_bytes`
    algorithm: str = ALGORITHM
    signature_algorithm: str = SIGNATURE_ALGORITHM

    def signed_bytes(self) -> bytes:
        claim = {"algorithm": self.algorithm, "hash": self.hash, "key_id": self.key_id,
                 "position": self.position, "recorded_at": self.recorded_at,
                 "signed_at": self.signed_at}
        return json.dumps(claim, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Checkpoint":
        fields = {k: data[k] for k in ("position", "hash", "recorded_at", "signed_at",
                                       "key_id", "public_key", "signature")}
        return cls(**fields, algorithm=data.get("algorithm", ALGORITHM),
                   signature_algorithm=data.get("signature_algorithm", SIGNATURE_ALGORITHM))


def key_id_of(public_raw: bytes) -> str:
    return hashlib.sha256(public_raw).hexdigest()[:16]


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SigningKey:
    def __init__(self, private: Ed25519PrivateKey) -> None:
        self.private = private
        self.public = private.public_key()
        self.public_raw = public_raw(self.public)
        self.key_id = key_id_of(self.public_raw)

    @classmethod
    def load_or_create(cls, path: Path) -> "SigningKey":
        if path.exists():
            return cls._load(path)
        private = Ed25519PrivateKey.generate()
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a name of its own, then linked into place: processes starting
        # together never read a half-written key, and all end up with the one that won.
        draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
            os.link(draft, path)
        except FileExistsError:
            return cls._load(path)
        finally:
            draft.unlink()
        key = cls(private)
        log.info("signing_key_created", path=str(path), key_id=key.key_id)
        return key

    @classmethod
    def _load(cls, path: Path) -> "SigningKey":
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise RuntimeError(f"{path} does not hold an Ed25519 private key")
        return cls(loaded)

    def public_pem(self) -> str:
        return self.public.public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    def sign(self, position: int, hash_: str, recorded_at: datetime) -> Checkpoint:
        unsigned = Checkpoint(position, hash_, format_time(recorded_at),
                              format_time(datetime.now(UTC)), self.key_id,
                              base64.b64encode(self.public_raw).decode(), "")
        signature = self.private.sign(unsigned.signed_bytes())
        return Checkpoint(**{**asdict(unsigned),
                             "signature": base64.b64encode(signature).decode()})


def read_public_key(value: str) -> bytes:
    """A public key named by a file that holds it, or given itself (see load_public_key)."""
    path = Path(value)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # a key's text is no file name: too long, a NUL in it
        is_file = False
    return load_public_key(path.read_text() if is_file else value)


def load_public_key(text: str) -> bytes:
    """The raw 32 bytes of a public key given as PEM, as base64 of those bytes (the
    `public_key` GET /v1/integrity/public-key shows), or as that answer's JSON."""
    text = text.strip()
    return _public_key_of_answer(text) if text.startswith("{") else _public_key_of_text(text)


def _public_key_of_text(text: str) -> bytes:
    if text.startswith("-----BEGIN"):
        return _public_key_of_pem(text)
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        raise ValueError("neither a file nor a key (PEM, base64 of the raw key, or the JSON "
                         "of GET /v1/integrity/public-key)") from None
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 public key is 32 bytes, this is {len(raw)}")
    return raw


def _public_key_of_pem(text: str) -> bytes:
    try:
        loaded = serialization.load_pem_public_key(text.encode())
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ValueError(f"not a PEM public key ({error})") from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return public_raw(loaded)


def _public_key_of_answer(text: str) -> bytes:
    """The key in GET /v1/integrity/public-key's answer; every form of it there must agree."""
    answer = json.loads(text)
    if not isinstance(answer, dict) or not {"public_key", "public_key_pem"} & set(answer):
        raise ValueError("JSON without public_key or public_key_pem")
    if answer.get("algorithm", SIGNATURE_ALGORITHM) != SIGNATURE_ALGORITHM:
        raise ValueError(f"its algorithm is {answer['algorithm']!r}, not {SIGNATURE_ALGORITHM}")
    forms = {_public_key_of_text(str(answer[name]).strip())
             for name in ("public_key", "public_key_pem") if name in answer}
    if len(forms) != 1:
        raise ValueError("its public_key and public_key_pem are different keys")
    raw = forms.pop()
    if "key_id" in answer and answer["key_id"] != key_id_of(raw):
        raise ValueError(f"its key_id {answer['key_id']!r} is not the id of its key")
    return raw


def _strict_b64decode(text: str) -> bytes:
    """Base64 exactly as chipledger writes it: another spelling of the same bytes (padding
    bits set, stray characters) is an edit."""
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("not canonical base64")
    return raw


def signature_holds(checkpoint: Checkpoint, trusted_public: bytes | None = None) -> bool:
    """The signature is good, by the trusted key when given, else by the embedded one."""
    if (checkpoint.algorithm, checkpoint.signature_algorithm) != (ALGORITHM,
                                                                  SIGNATURE_ALGORITHM):
        return False
    try:
        embedded = _strict_b64decode(checkpoint.public_key)
        signature = _strict_b64decode(checkpoint.signature)
    except (ValueError, TypeError):  # binascii.Error is a ValueError
        return False
    public = trusted_public if trusted_public is not None else embedded
    if key_id_of(public) != checkpoint.key_id or public != embedded:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, checkpoint.signed_bytes())
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class Extension:
    """Does a log extend the one a checkpoint saw?"""

    ok: bool
    signature_ok: bool
    chain: Verification
    checkpoint_position: int
    reason: str | None


def verify_extends(entries: Iterable[Sealed], checkpoint: Checkpoint,
                   trusted_public: bytes | None = None) -> Extension:
    signature_ok = signature_holds(checkpoint, trusted_public)
    at_checkpoint: list[str] = []

    def watch(stream: Iterable[Sealed]) -> Iterable[Sealed]:
        for entry in stream:
            if entry.position == checkpoint.position:
                at_checkpoint.append(entry.hash)
            yield entry

    chain = verify_chain(watch(entries))
    reason = None
    if not signature_ok:
        reason = "the checkpoint's signature does not verify"
    elif not chain.ok and (chain.first_mismatch or 0) <= checkpoint.position:
        reason = f"the chain breaks at position {chain.first_mismatch}: {chain.reason}"
    elif chain.verified_through < checkpoint.position and chain.ok:
        reason = (f"the log ends at position {chain.verified_through}, before the "
                  f"checkpoint's {checkpoint.position}")
    elif at_checkpoint and at_checkpoint[0] != checkpoint.hash:
        reason = (f"position {checkpoint.position} now has hash {at_checkpoint[0]}, not the "
                  f"checkpointed {checkpoint.hash}: the log was rewritten")
    elif not chain.ok:
        reason = f"the chain breaks at position {chain.first_mismatch}: {chain.reason}"
    return Extension(reason is None, signature_ok, chain, checkpoint.position, reason)


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


class CheckpointRefusedError(Conflict):
    """Signing the head would vouch for a log that does not extend the latest checkpoint."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(reason)
        self.reason, self.position = reason, position


def extension_problem(store: LogStore, key: SigningKey, latest: Checkpoint,
                      head: LogEntry | None) -> tuple[str, int] | None:
    """Why the head does not extend the latest checkpoint, and the position where the log
    stops doing so; None when it does: the checkpoint is this database's, its position still
    has its hash, and the chain recomputes from there to the head."""
    at = latest.position
    if not signature_holds(latest, key.public_raw):
        return (f"the latest checkpoint (position {at}) is not signed by this database's key "
                f"{key.key_id}", at)
    if head is None or head.position < at:
        end = head.position if head else 0
        return f"the log ends at position {end}, before the latest checkpoint's {at}", end + 1
    stored = store.entries(after=at - 1, limit=1)
    found = stored[0].hash if stored and stored[0].position == at else "none"
    if found != latest.hash:
        return (f"position {at} now has hash {found}, not the checkpointed {latest.hash}: the "
                "log was rewritten", at)
    return _chain_problem(store, latest, head)


def _chain_problem(store: LogStore, latest: Checkpoint,
                   head: LogEntry) -> tuple[str, int] | None:
    """Where the chain from the checkpoint's hash to the head does not recompute, if it
    does not (the fast reader and verifier of `ReadService.verify`)."""
    with closing(store.iter_chain_rows(after=latest.position)) as pages:
        chain = verify_rows(_through(pages, head.position), store.canonical_time,
                            after=latest.position, prev_hash=latest.hash)
    if not chain.ok:
        return (f"the chain breaks at position {chain.first_mismatch}, after the checkpoint at "
                f"{latest.position}: {chain.reason}", chain.first_mismatch or latest.position)
    if (chain.verified_through, chain.head_hash) != (head.position, head.hash):
        return (f"the chain from the checkpoint ends at position {chain.verified_through}, not "
                f"at the head's {head.position}", chain.verified_through + 1)
    return None


def _through(pages: Iterable[Iterable[ChainRow]], last: int) -> Iterator[list[ChainRow]]:
    """The rows up to position `last` (the head that was read, not what was appended since)."""
    for page in pages:
        rows = list(itertools.takewhile(lambda row: row[0][0] <= last, page))
        yield rows
        if not rows or rows[-1][0][0] >= last:
            return


class CheckpointerNeeds(Protocol):
    """What signing uses of the composition root (infra.bootstrap's Container has it)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def store(self) -> LogStore: ...
    @property
    def alarms(self) -> Alarms: ...
    @property
    def backend(self) -> Backend: ...


class Checkpointer:
    def __init__(self, needs: CheckpointerNeeds, key: SigningKey) -> None:
        self.store = needs.store
        self.checkpoints = CheckpointStore(needs.store)
        self.alarms = needs.alarms
        self.key = key
        self.settings = needs.settings
        self._lock = threading.Lock()

    def checkpoint_now(self) -> Checkpoint | None:
        """Sign the head unless the latest checkpoint already covers it. Raises
        CheckpointRefusedError, signing nothing, when the head does not extend the latest
        checkpoint."""
        with self._lock:
            # The latest checkpoint first: one another process signs meanwhile is then of a
            # head this read of the head reaches too.
            latest = self.checkpoints.latest()
            head = self.store.head()
            if latest is not None:
                self._check_extends(latest, head)
            if head is None or (latest is not None and latest.position >= head.position):
                return latest
            return self._sign(head)

    def _sign(self, head: LogEntry) -> Checkpoint | None:
        checkpoint = self.key.sign(head.position, head.hash, head.recorded_at)
        try:
            self.checkpoints.add(checkpoint)
        except Exception:  # another process signed this position first
            return self.checkpoints.latest()
        log.info("checkpoint_signed", position=checkpoint.position, key_id=self.key.key_id)
        return checkpoint

    def _check_extends(self, latest: Checkpoint, head: LogEntry | None) -> None:
        """Refuse, with an integrity alarm every process on the database reports, unless the
        head extends `latest`; the alarm is cleared once it does again (the log restored)."""
        problem = extension_problem(self.store, self.key, latest, head)
        if problem is None:
            if any(a.key == ALARM_KEY for a in self.alarms.active(ALARM_COMPONENT)):
                self.alarms.clear(ALARM_COMPONENT, ALARM_KEY)
            return
        reason, position = problem
        log.error("checkpoint_refused", reason=reason, position=position,
                  checkpoint_position=latest.position, head_position=head.position if head else 0)
        self.alarms.raise_alarm(ALARM_COMPONENT, ALARM_KEY, reason, position)
        raise CheckpointRefusedError(reason, position)

    def due(self, last_time: float, refused: bool = False) -> bool:
        """Whether to sign now: enough new events, or enough time. After a refusal, time
        alone: the log is checked again on that schedule, not on every poll."""
        head = self.store.head()
        latest = self.checkpoints.latest()
        behind = (head.position if head else 0) - (latest.position if latest else 0)
        if behind <= 0:
            return False
        return (not refused and behind >= self.settings.checkpoint_every_events) or \
            time.monotonic() - last_time >= self.settings.checkpoint_every_seconds

    def run(self, stop: threading.Event) -> None:
        last, refused = time.monotonic(), False
        while not stop.is_set():
            try:
                if self.due(last, refused):
                    refused = self._attempt()
                    last = time.monotonic()
            except Exception:
                log.exception("checkpoint_failed")
            stop.wait(min(5.0, self.settings.poll_interval * 4))

    def _attempt(self) -> bool:
        """Checkpoint now; whether it was refused (alarmed and logged already)."""
        try:
            self.checkpoint_now()
        except CheckpointRefusedError:
            return True
        return False


# The signing key: one per database -----------------------------------------------------------


class SigningKeyMismatchError(Exception):
    """This process holds a signing key other than the one its database signs with."""


@dataclass(frozen=True)
class RegisteredKey:
    key_id: str
    public_key: str  # base64 of the raw 32-byte Ed25519 key
    registered_at: datetime


def signing_key_for(container: CheckpointerNeeds) -> SigningKey:
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


def signing_key_path(container: CheckpointerNeeds) -> Path:
    """The configured key file, else the backend's place for it (beside a SQLite file)."""
    configured = container.settings.signing_key_file
    return Path(configured) if configured else container.backend.signing_key_path()
