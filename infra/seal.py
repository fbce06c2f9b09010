"""The hash chain that seals the log.

hash(n) = SHA-256(bytes(prev_hash) || canonical(n)), where canonical(n) is one line of JSON
naming the event (position, recorded_at, who recorded it, originator id and version, topic),
a newline, and the stored state bytes exactly as the events table holds them. The first
event's prev_hash is 64 zeros. The same functions verify the chain in the database and in an
offline export.

sha256-chain-v2 added `recorded_by` to the header line; v1 logs are refused at start (see
infra.store.check_schema).
"""

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from domain.times import format_time as format_time  # re-exported for infra callers

ALGORITHM = "sha256-chain-v2"
GENESIS_HASH = "0" * 64


@dataclass(frozen=True)
class RecordedBy:
    """Who recorded an event: an API key (`role` reader, writer, auditor or admin), a command
    line user (`key_id` "cli:<os user>", role "cli") or the service itself (role "system")."""

    key_id: str
    name: str
    role: str

    def to_json(self) -> dict[str, str]:
        return {"key_id": self.key_id, "name": self.name, "role": self.role}

    @cached_property
    def canonical(self) -> str:
        """The one JSON text of it: in the chain's header line and in the seals table."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, value: Any) -> "RecordedBy":
        if not isinstance(value, dict) or set(value) != {"key_id", "name", "role"} or \
                not all(isinstance(v, str) for v in value.values()):
            raise ValueError("recorded_by is not {key_id, name, role} of strings")
        return cls(value["key_id"], value["name"], value["role"])

    @classmethod
    def from_stored(cls, text: str) -> "RecordedBy":
        """The seals table's text; an unreadable one (edited behind the triggers) is kept as a
        name, so reads still show it and verification reports its position."""
        try:
            return cls.from_json(json.loads(text))
        except ValueError:
            return cls("", str(text), "")


@dataclass(frozen=True)
class Seal:
    position: int
    notification_id: int
    originator_id: UUID
    originator_version: int
    recorded_at: datetime
    prev_hash: str
    hash: str
    recorded_by: RecordedBy


# What the recorder needs to seal an event: (notification_id, originator_id, version, topic,
# state, recorded_by).
Sealable = tuple[int, UUID, int, str, bytes, RecordedBy]


@dataclass
class Submission:
    """One request's part of a commit: who sent it, which events are its own, and how its
    answer is built. The recorder seals its events as recorded by it and builds its answer
    (storing it under its Idempotency-Key, scoped to its sender) in the events' transaction,
    so nothing of the commit stays if any of that fails."""

    recorded_by: RecordedBy
    # the answer from the commit's seals by (originator id, version)
    build: Callable[[Mapping[tuple[UUID, int], "Seal"]], Any]
    status: int
    events: frozenset[tuple[UUID, int]] | None = None  # None: every event of the commit
    idempotency_key: str | None = None
    request_hash: str = ""
    answer: Any = None  # set by the recorder, in the transaction


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
    recorded_by: RecordedBy,
    originator_id: UUID,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """The bytes the chain hashes for one event: its header line, then its stored state."""
    return canonical_header(position, format_time(recorded_at), recorded_by,
                            str(originator_id), originator_version, topic) + state


def canonical_header(
    position: int, recorded_at: str, recorded_by: RecordedBy, originator_id: str,
    originator_version: int, topic: str,
) -> bytes:
    """The header line and its newline (without the state), from the canonical texts of the
    time and the id: the bytes json.dumps writes for the header dict, built without it."""
    if type(position) is not int or type(originator_version) is not int:
        # bool and other int subclasses (or anything else) print differently in JSON
        return _json_header(position, recorded_at, recorded_by, originator_id,
                            originator_version, topic)
    return header_start(json_string(originator_id), originator_version, position,
                        json_string(recorded_at)) + \
        header_end(recorded_by.canonical, json_string(topic))


# The header line in two halves, from its values already in JSON (strings quoted and escaped),
# in json.dumps's sorted order; loops over many events keep the second half, which events
# share (who recorded them, their topic).


def header_start(originator_id: str, originator_version: int, position: int,
                 recorded_at: str) -> bytes:
    return (f'{{"originator_id":{originator_id},"originator_version":{originator_version},'
            f'"position":{position},"recorded_at":{recorded_at}').encode()


def header_end(recorded_by: str, topic: str) -> bytes:
    return f',"recorded_by":{recorded_by},"topic":{topic}}}\n'.encode()


class HeaderEnds(dict[str, bytes]):
    """header_end of one sender (as the seals table holds it) with each topic looked up,
    written once: a log has a few dozen topics (event classes). Bounded all the same."""

    def __init__(self, stored_by: str) -> None:
        super().__init__()
        self.recorded_by = RecordedBy.from_stored(stored_by).canonical

    def __missing__(self, topic: str) -> bytes:
        if len(self) >= 1024:
            self.clear()
        end = self[topic] = header_end(self.recorded_by, json_string(topic))
        return end


def _json_header(
    position: int, recorded_at: str, recorded_by: RecordedBy, originator_id: str,
    originator_version: int, topic: str,
) -> bytes:
    header = {
        "originator_id": originator_id,
        "originator_version": originator_version,
        "position": position,
        "recorded_at": recorded_at,
        "recorded_by": recorded_by.to_json(),
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


def seal_batch(
    last_position: int,
    last_hash: str,
    recorded_at: datetime,
    events: list[Sealable],
) -> list[Seal]:
    """Seal events in commit order (by notification id)."""
    seals = []
    prev = last_hash
    prev_digest = bytes.fromhex(last_hash)
    moment = format_time(recorded_at)  # one commit, one time: format it once
    moment_json = json_string(moment)
    senders: dict[RecordedBy, HeaderEnds] = {}
    for offset, (notification_id, originator_id, version, topic, state, recorded_by) in \
            enumerate(sorted(events, key=lambda e: e[0]), start=1):
        position = last_position + offset
        if type(version) is int:  # canonical_header's bytes, its shared end written once
            ends = senders.get(recorded_by)
            if ends is None:
                ends = senders[recorded_by] = HeaderEnds(recorded_by.canonical)
            header = (header_start(f'"{originator_id}"', version, position, moment_json),
                      ends[topic])
        else:
            header = (canonical_header(position, moment, recorded_by, str(originator_id),
                                       version, topic), b"")
        prev_digest = hashlib.sha256(b"".join((prev_digest, *header, state))).digest()
        digest = prev_digest.hex()
        seals.append(Seal(position, notification_id, originator_id, version, recorded_at, prev,
                          digest, recorded_by))
        prev = digest
    return seals
