"""The hash chain that seals the log.

hash(n) = SHA-256(bytes(prev_hash) || canonical(n)), where canonical(n) is one line of JSON
naming the event (position, recorded_at, originator id and version, topic), a newline, and the
stored state bytes exactly as the events table holds them. The first event's prev_hash is 64
zeros. The same functions verify the chain in the database and in an offline export.
"""

import hashlib
import json
import re
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
    utc = moment.astimezone(UTC)
    if utc.year >= 1000:  # strftime's %Y, below 1000, is not padded (glibc): keep its form
        # the strftime's text at 40% of its cost (an f-string with format specs: 65%)
        return "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
            utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second, utc.microsecond)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


_FORMATTED = re.compile(r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")


def reformat_time(text: str) -> str:
    """format_time(parse_time(text)): `text` itself when format_time wrote it (as SQLite
    stores times), without strptime, which costs ten times the rest of a check."""
    if type(text) is str and _FORMATTED.fullmatch(text):
        try:
            # the fields strptime would read; datetime() refuses what it would refuse
            datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                     int(text[14:16]), int(text[17:19]), int(text[20:26]))
        except ValueError:
            pass  # strptime raises it, with its own message
        else:
            return text  # format_time pads each of those fields back to the same digits
    return format_time(parse_time(text))


def canonical_bytes(
    *,
    position: int,
    recorded_at: datetime,
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    return canonical_header(position, format_time(recorded_at), str(originator_id),
                          originator_version, topic) + state


def canonical_header(
    position: int, recorded_at: str, originator_id: str, originator_version: int, topic: str
) -> bytes:
    """The header line and its newline (without the state), from the canonical texts of the
    time and the id: the bytes json.dumps writes for the header dict, built without it."""
    if type(position) is not int or type(originator_version) is not int:
        # bool and other int subclasses (or anything else) print differently in JSON
        return _json_header(position, recorded_at, originator_id, originator_version, topic)
    return (
        f'{{"originator_id":{json_string(originator_id)},'
        f'"originator_version":{originator_version},"position":{position},'
        f'"recorded_at":{json_string(recorded_at)},"topic":{json_string(topic)}}}\n'
    ).encode()


def _json_header(
    position: int, recorded_at: str, originator_id: str, originator_version: int, topic: str
) -> bytes:
    header = {
        "originator_id": originator_id,
        "originator_version": originator_version,
        "position": position,
        "recorded_at": recorded_at,
        "topic": topic,
    }
    line = json.dumps(header, sort_keys=True, separators=(",", ":"))
    return line.encode() + b"\n"


def json_string(text: str | None) -> str:
    """`text` as json.dumps writes it (ASCII-only, escaped), cheaply for the common case."""
    if type(text) is str and text.isascii() and text.isprintable() and '"' not in text \
            and "\\" not in text:
        # json.dumps escapes exactly '"', '\\' and what lies outside printable ASCII; the
        # type test keeps None (null) and str subclasses (own __format__) on json.dumps
        return f'"{text}"'
    return json.dumps(text)


def chain_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


def chain_digest(prev_digest: bytes, header: bytes, state: bytes) -> bytes:
    """chain_hash on raw digests, for loops that would otherwise hex-encode twice per event."""
    return hashlib.sha256(b"".join((prev_digest, header, state))).digest()


def seal_batch(
    last_position: int,
    last_hash: str,
    recorded_at: datetime,
    events: list[tuple[int, UUID, int, str, bytes]],
) -> list[Seal]:
    """Seal events (notification_id, originator_id, version, topic, state) in commit order."""
    seals = []
    prev = last_hash
    prev_digest = bytes.fromhex(last_hash)
    moment = format_time(recorded_at)  # one commit, one time: format it once
    for offset, (notification_id, originator_id, version, topic, state) in enumerate(
        sorted(events, key=lambda e: e[0]), start=1
    ):
        position = last_position + offset
        prev_digest = chain_digest(
            prev_digest,
            canonical_header(position, moment, str(originator_id), version, topic),
            state,
        )
        digest = prev_digest.hex()
        seals.append(
            Seal(position, notification_id, originator_id, version, recorded_at, prev, digest)
        )
        prev = digest
    return seals
