"""C2SP checkpoints (c2sp.org/tlog-checkpoint): a tree head as the text of a signed note.

    <origin>
    <tree size in decimal>
    <base64 root hash>
    [extension lines]

each line ending in a newline. The origin names the log; its signing key's name should be the
origin too.
"""

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from infra.merkle.hashing import HASH_SIZE
from infra.merkle.note import (
    MalformedNoteError,
    Note,
    NoteError,
    Signer,
    Verifier,
    open_note,
    sign_note,
)

_DECIMAL = re.compile("0|[1-9][0-9]*")
MAX_SIZE = 2**63 - 1  # what a u64 of the signed formats holds with room


class CheckpointError(NoteError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise CheckpointError("a checkpoint's origin is one non-empty line")
        if not 0 <= self.size <= MAX_SIZE:
            raise CheckpointError(f"a tree size is from 0 to {MAX_SIZE}, not {self.size}")
        if len(self.root) != HASH_SIZE:
            raise CheckpointError(f"a root hash is {HASH_SIZE} bytes, not {len(self.root)}")
        if any(not line or "\n" in line for line in self.extensions):
            raise CheckpointError("each extension line is one non-empty line")

    def body(self) -> str:
        """The note text: what the log signs and witnesses cosign."""
        root = base64.b64encode(self.root).decode()
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root,
                                                 *self.extensions))


def parse_checkpoint(body: str) -> Checkpoint:
    if not body.endswith("\n"):
        raise CheckpointError("a checkpoint's lines each end in a newline")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has an origin, a size and a root hash line")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise CheckpointError(f"{size!r} is not a tree size: decimal, no leading zeros")
    return Checkpoint(origin, int(size), _root(root), tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, *signers: Signer) -> str:
    return sign_note(checkpoint.body(), *signers)


def open_checkpoint(
    note: str | bytes, origin: str, verifiers: Iterable[Verifier]
) -> tuple[Checkpoint, Note]:
    """The checkpoint of a note signed by a known key, for the log named `origin`."""
    opened = open_note(note, verifiers)
    try:
        checkpoint = parse_checkpoint(opened.text)
    except CheckpointError as malformed:
        raise MalformedNoteError(f"the note is not a checkpoint: {malformed}") from None
    if checkpoint.origin != origin:
        raise CheckpointError(f"the checkpoint is of {checkpoint.origin!r}, not {origin!r}")
    return checkpoint, opened


def _root(line: str) -> bytes:
    try:
        root = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError):
        raise CheckpointError(f"{line!r} is not a base64 root hash") from None
    if base64.b64encode(root).decode() != line:
        raise CheckpointError(f"{line!r} is not the canonical base64 of a root hash")
    return root
