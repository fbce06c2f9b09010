"""C2SP signed notes (c2sp.org/signed-note): a text, a blank line, then signature lines.

    <text ending in a newline>

    — <key name> base64(4-byte key ID || signature)

A key is known by its name and key ID together: SHA-256(name || 0x0A || type || public key)
cut to 4 bytes, with type 0x01 for the Ed25519 signatures here (0x04 for the cosignatures of
infra.merkle.cosignature). Signatures from keys the reader does not know are ignored; one
from a known key that fails to verify rejects the whole note.
"""

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "  # an em dash and a space
# The spec asks for at least 16; the Go reference (golang.org/x/mod/sumdb/note) takes 100.
MAX_SIGNATURES = 100
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX = re.compile("[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, key or signature that cannot be trusted, saying why."""


class MalformedNoteError(NoteError):
    pass


class InvalidSignatureError(NoteError):
    """A known key's signature does not verify: the note was changed, or forged."""


class UnverifiedNoteError(NoteError):
    """No signature from a known key: the note says nothing the reader may trust."""


@dataclass(frozen=True)
class Signature:
    name: str
    key_id: bytes  # 4 bytes
    signature: bytes  # what the algorithm signed with, after the key ID

    def line(self) -> str:
        encoded = base64.b64encode(self.key_id + self.signature).decode()
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    text: str
    verified: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


class Signer(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> bytes: ...
    def sign(self, message: bytes) -> bytes: ...


class Verifier(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key_id(self) -> bytes: ...
    def verify(self, message: bytes, signature: bytes) -> bool: ...


def key_id(name: str, key_type: int, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([key_type]) + public).digest()[:4]


def check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name) or _CONTROL.search(name):
        raise NoteError(f"{name!r} is not a key name: non-empty, without spaces or '+'")
    return name


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class VerifierKey:
    """A vkey: `<name>+<hex key ID>+<base64(type || public key)>`."""

    name: str
    key_type: int
    public: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.key_type, self.public)

    def __str__(self) -> str:
        encoded = base64.b64encode(bytes([self.key_type]) + self.public).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    @classmethod
    def parse(cls, text: str) -> "VerifierKey":
        name, _, rest = text.partition("+")
        hex_id, _, encoded = rest.partition("+")
        key = _strict_base64(encoded)
        if not _KEY_ID_HEX.fullmatch(hex_id) or key is None or len(key) < 2:
            raise NoteError(f"{text!r} is not a verifier key: name+keyid+base64key")
        found = cls(check_name(name), key[0], key[1:])
        if found.key_id.hex() != hex_id:
            raise NoteError(f"the key ID of {text!r} is not the hash of its name and key")
        return found


@dataclass(frozen=True)
class Ed25519Verifier:
    name: str
    public: bytes

    @classmethod
    def from_vkey(cls, text: str) -> "Ed25519Verifier":
        vkey = VerifierKey.parse(text)
        if vkey.key_type != ED25519 or len(vkey.public) != 32:
            raise NoteError(f"{text!r} is not an Ed25519 note key (type 0x01, 32 bytes)")
        return cls(vkey.name, vkey.public)

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, ED25519, self.public)

    def vkey(self) -> str:
        return str(VerifierKey(self.name, ED25519, self.public))

    def verify(self, message: bytes, signature: bytes) -> bool:
        return ed25519_holds(self.public, message, signature)


class Ed25519Signer:
    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        self.name = check_name(name)
        self.private = private
        self.verifier = Ed25519Verifier(name, raw_public_key(private.public_key()))
        self.key_id = self.verifier.key_id

    @classmethod
    def from_skey(cls, text: str) -> "Ed25519Signer":
        """From the Go reference's private key string (golang.org/x/mod/sumdb/note):
        `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>`."""
        parts = text.split("+", 4)  # base64 may hold '+': it is the fifth part, whole
        seed = _strict_base64(parts[4]) if len(parts) == 5 else None
        if parts[:2] != ["PRIVATE", "KEY"] or seed is None or len(seed) != 33 \
                or seed[0] != ED25519:
            raise NoteError("not a signer key: PRIVATE+KEY+name+keyid+base64(0x01 || seed)")
        signer = cls(parts[2], Ed25519PrivateKey.from_private_bytes(seed[1:]))
        if signer.key_id.hex() != parts[3]:
            raise NoteError("the key ID of the signer key is not the hash of its name and key")
        return signer

    def skey(self) -> str:
        seed = self.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        encoded = base64.b64encode(bytes([ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id.hex()}+{encoded}"

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)

    def vkey(self) -> str:
        return self.verifier.vkey()


def sign(text: str, signer: Signer) -> Signature:
    """The signature line `signer` adds to a note of `text`."""
    _check_text(text)
    return Signature(check_name(signer.name), signer.key_id, signer.sign(text.encode()))


def format_note(text: str, signatures: Iterable[Signature]) -> str:
    _check_text(text)
    lines = "".join(signature.line() for signature in signatures)
    if not lines:
        raise MalformedNoteError("a note needs at least one signature")
    return f"{text}\n{lines}"


def sign_note(text: str, *signers: Signer) -> str:
    return format_note(text, [sign(text, signer) for signer in signers])


def parse_note(note: str | bytes) -> tuple[str, list[Signature]]:
    """The text and the signatures of a note, none of them verified yet."""
    message = _decoded(note)
    split = message.rfind("\n\n")
    if split < 0 or _CONTROL.search(message):
        raise MalformedNoteError("a note is a text, a blank line and signature lines")
    text, lines = message[:split + 1], message[split + 2:]
    if not lines.endswith("\n"):
        raise MalformedNoteError("a note ends with a signature line and its newline")
    signature_lines = lines[:-1].split("\n")
    if len(signature_lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"a note has at most {MAX_SIGNATURES} signatures")
    return text, [_parsed_line(line) for line in signature_lines]


def open_note(note: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """The note, with the signatures of known keys verified and the others set aside.
    Raises InvalidSignatureError if a known key's signature fails, UnverifiedNoteError if
    no known key signed."""
    known = _by_key(verifiers)
    text, signatures = parse_note(note)
    verified: list[Signature] = []
    unverified: list[Signature] = []
    for signature in signatures:
        verifier = known.get((signature.name, signature.key_id))
        if verifier is None:
            _add_once(unverified, signature)
        elif verifier.verify(text.encode(), signature.signature):
            _add_once(verified, signature)
        else:
            raise InvalidSignatureError(f"the signature of {signature.name} does not verify")
    if not verified:
        raise UnverifiedNoteError("no key this reader knows signed the note")
    return Note(text, tuple(verified), tuple(unverified))


def _by_key(verifiers: Iterable[Verifier]) -> dict[tuple[str, bytes], Verifier]:
    known: dict[tuple[str, bytes], Verifier] = {}
    for verifier in verifiers:
        if known.setdefault((verifier.name, verifier.key_id), verifier) is not verifier:
            raise NoteError(f"two verifiers share the name and key ID of {verifier.name}")
    return known


def _parsed_line(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNoteError(f"{line!r} is not a signature line: '— name signature'")
    name, _, encoded = line[len(SIGNATURE_PREFIX):].partition(" ")
    raw = _strict_base64(encoded)
    if raw is None or len(raw) < 5:
        raise MalformedNoteError(f"{line!r} does not carry a base64 key ID and signature")
    try:
        return Signature(check_name(name), raw[:4], raw[4:])
    except NoteError as bad_name:
        raise MalformedNoteError(str(bad_name)) from None


def _add_once(signatures: list[Signature], signature: Signature) -> None:
    if signature not in signatures:
        signatures.append(signature)


def _decoded(note: str | bytes) -> str:
    try:
        if isinstance(note, bytes):
            return note.decode("utf-8")
        note.encode("utf-8")  # a str may hold lone surrogates, which no note holds
        return note
    except UnicodeError:
        raise MalformedNoteError("a note is UTF-8") from None


def _check_text(text: str) -> None:
    if not text.endswith("\n") or _CONTROL.search(_decoded(text)):
        raise MalformedNoteError("a note's text ends in a newline and has no control characters")


def _strict_base64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True) if text else None
    except (binascii.Error, ValueError):
        return None


def ed25519_holds(public: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
