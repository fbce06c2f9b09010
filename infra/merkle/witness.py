"""What a witness checks before it cosigns, and what it keeps between runs.

A witness holds the last checkpoint it accepted (its state file). Given the log's current
checkpoint note it accepts it only if the log's key signed it and, when it holds an earlier
one, the log has not shrunk, a checkpoint of the same size has the same root, and the
consistency proof from the earlier size to the new one verifies against both roots: a log
that rewrote or forked its history cannot produce one. Its first checkpoint it accepts on
the signature alone (it has nothing to be consistent with).

The witness's key file holds `PRIVATE+KEY+<name>+<hex key ID>+<base64(0x04 || seed)>`, the
Go reference's private key text with the cosignature/v1 type byte.
"""

import base64
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from infra.merkle.checkpoint import Checkpoint, open_checkpoint
from infra.merkle.cosignature import COSIGNATURE_V1, CosignatureSigner
from infra.merkle.note import Ed25519Verifier, NoteError
from infra.merkle.verify import ProofError, verify_consistency

Consistency = Callable[[int, int], list[bytes]]  # (from size, to size) -> the log's proof


class WitnessRefusedError(Exception):
    """The checkpoint is not one this witness may cosign, saying why."""


@dataclass(frozen=True)
class WitnessState:
    log_key: str  # the log's note verifier key, pinned at the first run
    size: int = 0
    root: str = ""  # base64, as in the note
    note: str = ""

    @classmethod
    def load(cls, path: Path) -> "WitnessState | None":
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))

    def save(self, path: Path) -> None:
        """Written whole under another name, then renamed: a crash keeps the old state."""
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        draft.write_text(json.dumps(asdict(self), indent=2) + "\n")
        os.replace(draft, path)


def accept(state: WitnessState, note: str, consistency: Consistency) -> Checkpoint:
    """The checkpoint of `note` if this witness may cosign it; WitnessRefusedError otherwise."""
    verifier = Ed25519Verifier.from_vkey(state.log_key)
    try:
        checkpoint, _ = open_checkpoint(note, verifier.name, [verifier])
    except NoteError as error:
        raise WitnessRefusedError(
            f"the checkpoint is not signed by the log's key: {error}") from None
    if not state.root:
        return checkpoint
    held = base64.b64decode(state.root)
    if checkpoint.size < state.size:
        raise WitnessRefusedError(f"the log's checkpoint has {checkpoint.size} events, fewer than "
                             f"the {state.size} this witness accepted: the log was cut back")
    try:
        proof = consistency(state.size, checkpoint.size) if checkpoint.size > state.size else []
        verify_consistency(state.size, checkpoint.size, proof, held, checkpoint.root)
    except ProofError as error:
        raise WitnessRefusedError(
            f"the checkpoint of size {checkpoint.size} is not consistent with the one of size "
            f"{state.size} this witness accepted ({error}): the log was rewritten or forked"
        ) from None
    return checkpoint


def accepted(state: WitnessState, checkpoint: Checkpoint, note: str) -> WitnessState:
    return WitnessState(state.log_key, checkpoint.size,
                        base64.b64encode(checkpoint.root).decode(), note)


def witness_key_text(signer: CosignatureSigner) -> str:
    seed = signer.private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    encoded = base64.b64encode(bytes([COSIGNATURE_V1]) + seed).decode()
    return f"PRIVATE+KEY+{signer.name}+{signer.key_id.hex()}+{encoded}\n"


def read_witness_key(text: str) -> CosignatureSigner:
    parts = text.strip().split("+", 4)
    try:
        seed = base64.b64decode(parts[4], validate=True) if len(parts) == 5 else b""
    except ValueError:
        seed = b""
    if parts[:2] != ["PRIVATE", "KEY"] or len(seed) != 33 or seed[0] != COSIGNATURE_V1:
        raise NoteError("not a witness key: PRIVATE+KEY+name+keyid+base64(0x04 || seed)")
    signer = CosignatureSigner(parts[2], Ed25519PrivateKey.from_private_bytes(seed[1:]))
    if signer.key_id.hex() != parts[3]:
        raise NoteError("the key ID of the witness key is not the hash of its name and key")
    return signer


def new_witness_key(name: str) -> CosignatureSigner:
    return CosignatureSigner(name, Ed25519PrivateKey.generate())
