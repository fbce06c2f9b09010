"""The checkpoint's signed claim and the Ed25519 keys that sign and check it: no database here
(infra.checkpoint_store keeps checkpoints and the database's one registered key)."""

import base64
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from infra.seal import ALGORITHM, format_time

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
