"""Recompute the hash chain over sealed entries, from the database or from an export."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from infra.seal import GENESIS_HASH, canonical_bytes, chain_hash


class Sealed(Protocol):
    @property
    def position(self) -> int: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def originator_id(self) -> UUID: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def topic(self) -> str: ...
    @property
    def state(self) -> bytes: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


@dataclass(frozen=True)
class Verification:
    ok: bool
    verified_through: int  # the last position whose hash checked out
    first_mismatch: int | None
    head_hash: str
    reason: str | None = None


def verify_chain(entries: Iterable[Sealed]) -> Verification:
    """Walk the chain from position 1; stop at the first entry that does not check out."""
    expected_position, prev_hash = 1, GENESIS_HASH
    for entry in entries:
        reason = _problem(entry, expected_position, prev_hash)
        if reason is not None:
            return Verification(False, expected_position - 1, expected_position, prev_hash,
                                reason)
        expected_position, prev_hash = expected_position + 1, entry.hash
    return Verification(True, expected_position - 1, None, prev_hash)


def _problem(entry: Sealed, expected_position: int, prev_hash: str) -> str | None:
    if entry.position != expected_position:
        return f"position {expected_position} is missing (found {entry.position} next)"
    if entry.prev_hash != prev_hash:
        return "its prev_hash does not match the previous entry's hash"
    recomputed = chain_hash(
        prev_hash,
        canonical_bytes(
            position=entry.position,
            recorded_at=entry.recorded_at,
            originator_id=entry.originator_id,
            originator_version=entry.originator_version,
            topic=entry.topic,
            state=entry.state,
        ),
    )
    if recomputed != entry.hash:
        return "its content does not match its hash"
    return None
