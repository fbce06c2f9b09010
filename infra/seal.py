"""The hash chain that seals the log.

hash(n) = SHA-256(bytes(prev_hash) || canonical(n)), where canonical(n) is one line of JSON
naming the event (position, recorded_at, originator id and version, topic), a newline, and the
stored state bytes exactly as the events table holds them. The first event's prev_hash is 64
zeros. The same functions verify the chain in the database and in an offline export.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

ALGORITHM = "sha256-chain-v1"
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class Seal:
    position: int
    notification_id: int
    originator_id: UUID
    originator_version: int
    recorded_at: datetime
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class IdempotencyClaim:
    """Asks the recorder to store a request's answer with its events, in their transaction."""

    key: str
    request_hash: str
    status: int
    answer: Any  # callable: list[Seal] -> JSON-able answer


def format_time(moment: datetime) -> str:
    """Fixed-width UTC text, so times compare as strings and hash the same everywhere."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def canonical_bytes(
    *,
    position: int,
    recorded_at: datetime,
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    header = {
        "originator_id": str(originator_id),
        "originator_version": originator_version,
        "position": position,
        "recorded_at": format_time(recorded_at),
        "topic": topic,
    }
    line = json.dumps(header, sort_keys=True, separators=(",", ":"))
    return line.encode() + b"\n" + state


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def seal_batch(
    last_position: int,
    last_hash: str,
    recorded_at: datetime,
    events: list[tuple[int, UUID, int, str, bytes]],
) -> list[Seal]:
    """Seal events (notification_id, originator_id, version, topic, state) in commit order."""
    seals = []
    prev = last_hash
    for offset, (notification_id, originator_id, version, topic, state) in enumerate(
        sorted(events, key=lambda e: e[0]), start=1
    ):
        position = last_position + offset
        digest = chain_hash(
            prev,
            canonical_bytes(
                position=position,
                recorded_at=recorded_at,
                originator_id=originator_id,
                originator_version=version,
                topic=topic,
                state=state,
            ),
        )
        seals.append(
            Seal(position, notification_id, originator_id, version, recorded_at, prev, digest)
        )
        prev = digest
    return seals
