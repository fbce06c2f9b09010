"""Recompute the hash chain over sealed entries, from the database or from an export."""

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from infra.seal import (
    GENESIS_HASH,
    HeaderEnds,
    RecordedBy,
    canonical_bytes,
    canonical_header,
    chain_hash,
    header_start,
    json_string,
)

# A seal and its event, as LogStore.iter_chain_rows reads them: (position, recorded_at,
# originator_id, originator_version, notification_id, prev_hash, hash, recorded_by) and
# (notification_id, topic, state). originator_id is in str(UUID)'s form; recorded_at is as the
# database returns it, for a canonical_time function to turn into format_time's text;
# recorded_by is the seals table's text (RecordedBy.canonical, unless edited).
SealRow = tuple[int, Any, str, int, int, str, str, str]
EventRow = tuple[int, str, bytes]
ChainRow = tuple[SealRow, EventRow]


class Sealed(Protocol):
    @property
    def position(self) -> int: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def recorded_by(self) -> RecordedBy: ...
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
            recorded_by=entry.recorded_by,
            originator_id=entry.originator_id,
            originator_version=entry.originator_version,
            topic=entry.topic,
            state=entry.state,
        ),
    )
    if recomputed != entry.hash:
        return "its content does not match its hash"
    return None


_NO_TIME = object()


def verify_rows(
    pages: Iterable[Iterable[ChainRow]], canonical_time: Callable[[Any], str], *,
    after: int = 0, prev_hash: str = GENESIS_HASH,
) -> Verification:
    """verify_chain over plain rows, a page at a time: the same checks in the same order with
    the same answers, without an object per event or a hex round trip per hash. With `after`
    and `prev_hash`, the rows continue a chain trusted up to `after`, whose hash is
    `prev_hash` (the rows start at `after + 1`)."""
    expected_position, prev_digest = after + 1, bytes.fromhex(prev_hash)
    sha256, join = hashlib.sha256, b"".join
    senders: dict[str, HeaderEnds] = {}
    ends, last_by = HeaderEnds(""), None
    last_time: Any = _NO_TIME
    time_text = time_json = ""
    for page in pages:
        for (position, recorded_at, originator_id, version, _, stored_prev, stored_hash,
             stored_by), (_, topic, state) in page:
            if position != expected_position:
                return _broken(expected_position, prev_hash,
                               f"position {expected_position} is missing (found {position} "
                               "next)")
            if stored_prev != prev_hash:
                return _broken(expected_position, prev_hash,
                               "its prev_hash does not match the previous entry's hash")
            if recorded_at != last_time:  # a commit's events share their time: format it once
                time_text = canonical_time(recorded_at)
                last_time, time_json = recorded_at, json_string(time_text)
            if type(position) is int and type(version) is int:
                # str(UUID)'s form needs no JSON escaping
                start = header_start(f'"{originator_id}"', version, position, time_json)
                if stored_by != last_by:  # a commit, a key's run of commits: one sender
                    found = senders.get(stored_by)
                    if found is None:
                        if len(senders) >= 1024:
                            senders.clear()
                        found = senders[stored_by] = HeaderEnds(stored_by)
                    ends, last_by = found, stored_by
                end = ends[topic]
            else:
                start, end = canonical_header(position, time_text,
                                              RecordedBy.from_stored(stored_by),
                                              originator_id, version, topic), b""
            digest = sha256(join((prev_digest, start, end, state))).digest()
            if digest.hex() != stored_hash:
                return _broken(expected_position, prev_hash, "its content does not match its hash")
            expected_position, prev_hash, prev_digest = (expected_position + 1, stored_hash,
                                                         digest)
    return Verification(True, expected_position - 1, None, prev_hash)


def _broken(position: int, prev_hash: str, reason: str) -> Verification:
    return Verification(False, position - 1, position, prev_hash, reason)
