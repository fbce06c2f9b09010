"""Witness cosignatures (c2sp.org/tlog-cosignature, cosignature/v1 with Ed25519).

A witness that has checked a checkpoint consistent with every one it saw before signs

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint's note text>

and adds a note signature line to the checkpoint whose bytes are the key ID, the time as a
big-endian u64 and the 64-byte Ed25519 signature. Its key ID is that of signature type 0x04,
so a witness's key can never be taken for a log's. The message does not name the witness:
one key serves one witness name.
"""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from infra.merkle.note import (
    Note,
    NoteError,
    Signature,
    VerifierKey,
    check_name,
    ed25519_holds,
    key_id,
    open_note,
    raw_public_key,
    sign,
)

COSIGNATURE_V1 = 0x04
HEADER = "cosignature/v1"
MAX_TIMESTAMP = 2**63 - 1
SIGNATURE_SIZE = 8 + 64


def cosigned_message(text: bytes, timestamp: int) -> bytes:
    return f"{HEADER}\ntime {timestamp}\n".encode() + text


@dataclass(frozen=True)
class CosignatureVerifier:
    name: str
    public: bytes

    @classmethod
    def from_vkey(cls, text: str) -> "CosignatureVerifier":
        vkey = VerifierKey.parse(text)
        if vkey.key_type != COSIGNATURE_V1 or len(vkey.public) != 32:
            raise NoteError(f"{text!r} is not a cosignature/v1 key (type 0x04, 32 bytes)")
        return cls(vkey.name, vkey.public)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, COSIGNATURE_V1, self.public)

    def vkey(self) -> str:
        return str(VerifierKey(self.name, COSIGNATURE_V1, self.public))

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        return timestamp <= MAX_TIMESTAMP and ed25519_holds(
            self.public, cosigned_message(message, timestamp), signature[8:])


class CosignatureSigner:
    """A witness's key; `clock` gives the POSIX time each cosignature states."""

    def __init__(self, name: str, private: Ed25519PrivateKey,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = check_name(name)
        self.private = private
        self.clock = clock
        self.verifier = CosignatureVerifier(name, raw_public_key(private.public_key()))
        self.key_id = self.verifier.key_id

    def sign(self, message: bytes) -> bytes:
        timestamp = int(self.clock())
        if not 0 < timestamp <= MAX_TIMESTAMP:
            raise NoteError(f"a cosignature's time is from 1 to {MAX_TIMESTAMP} seconds")
        signed = self.private.sign(cosigned_message(message, timestamp))
        return timestamp.to_bytes(8, "big") + signed

    def vkey(self) -> str:
        return self.verifier.vkey()


def cosign(checkpoint_text: str, witness: CosignatureSigner) -> Signature:
    """The cosignature line a witness returns for a checkpoint it has checked."""
    return sign(checkpoint_text, witness)


def cosignature_time(signature: Signature) -> int:
    if len(signature.signature) != SIGNATURE_SIZE:
        raise NoteError(f"the signature of {signature.name} is not a cosignature/v1")
    return int.from_bytes(signature.signature[:8], "big")


def witnessed(note: str | bytes, witnesses: Iterable[CosignatureVerifier]) -> dict[str, int]:
    """Which of `witnesses` cosigned the note, and when: {witness name: POSIX time}.
    UnverifiedNoteError if none did; InvalidSignatureError if one's cosignature fails."""
    opened: Note = open_note(note, witnesses)
    return {signature.name: cosignature_time(signature) for signature in opened.verified}
