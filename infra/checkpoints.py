"""Signed checkpoints of the log's head, and verification against them.

The service signs (position, hash, recorded_at) of its head with an Ed25519 key kept in a file
outside the event log, generated on first start. Checkpoints live in their own table: they
are not events and never move the head. An auditor who kept an earlier checkpoint can prove
the current log extends the one they saw: the chain up to that position is unchanged.
"""

import base64
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from infra.bootstrap import Container
from infra.seal import ALGORITHM, format_time, parse_time
from infra.store import LogStore
from infra.verify import Sealed, Verification, verify_chain

log = structlog.get_logger("chipledger.checkpoints")
SIGNATURE_ALGORITHM = "ed25519"


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


def load_public_key(text: str) -> bytes:
    """A public key given as PEM or as base64 of the raw 32 bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        loaded = serialization.load_pem_public_key(text.encode())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return public_raw(loaded)
    return base64.b64decode(text, validate=True)


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


class Checkpointer:
    def __init__(self, container: Container, key: SigningKey) -> None:
        self.store = container.store
        self.checkpoints = CheckpointStore(container.store)
        self.key = key
        self.settings = container.settings
        self._lock = threading.Lock()

    def checkpoint_now(self) -> Checkpoint | None:
        """Sign the head unless the latest checkpoint already covers it."""
        with self._lock:
            head = self.store.head()
            latest = self.checkpoints.latest()
            if head is None:
                return latest
            if latest is not None and latest.position >= head.position:
                return latest
            checkpoint = self.key.sign(head.position, head.hash, head.recorded_at)
            try:
                self.checkpoints.add(checkpoint)
            except Exception:  # another process signed this position first
                return self.checkpoints.latest()
            log.info("checkpoint_signed", position=checkpoint.position, key_id=self.key.key_id)
            return checkpoint

    def due(self, last_time: float) -> bool:
        head = self.store.head()
        latest = self.checkpoints.latest()
        behind = (head.position if head else 0) - (latest.position if latest else 0)
        if behind <= 0:
            return False
        return behind >= self.settings.checkpoint_every_events or \
            time.monotonic() - last_time >= self.settings.checkpoint_every_seconds

    def run(self, stop: threading.Event) -> None:
        last = time.monotonic()
        while not stop.is_set():
            try:
                if self.due(last):
                    self.checkpoint_now()
                    last = time.monotonic()
            except Exception:
                log.exception("checkpoint_failed")
            stop.wait(min(5.0, self.settings.poll_interval * 4))


def signing_key_path(container: Container) -> Path:
    settings = container.settings
    if settings.signing_key_file:
        return Path(settings.signing_key_file)
    if settings.backend == "sqlite":
        return Path(settings.database_url.removeprefix("sqlite:///") + ".signing-key.pem")
    return Path("chipledger-signing-key.pem")
