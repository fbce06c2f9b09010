"""Draft records: the lean stand-in for the aggregates when a batch is ingested in bulk.

A batch of many thousand lines spends most of its time in the library's aggregate machinery
(event objects, mutator dispatch, protocol checks) and its mapper. A draft keeps only what the
checks need, the record's `RecordState` (the same fold and the same invariants the aggregates
apply), and the new events as (type, version, data). `stored_events` then writes them in the
exact form the library's mapper would, so the log cannot tell which path wrote an event and
the aggregates load them as their own.
"""

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import datetime_now_with_tzinfo
from eventsourcing.persistence import StoredEvent

from domain.aggregates import AGGREGATES, TOPIC_TO_TYPE
from domain.ids import record_uuid
from domain.kinds import ALL_KINDS, Role
from domain.records import LoggedEvent, RecordState, check_event, check_state

# The library's JSONTranscoder encoder settings; the timestamp as its `datetime_iso`
# transcoding writes it.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
# The C encoder that _ENCODER.encode builds for every call, built once; without the circular
# reference check (markers None), which never fires on parsed JSON and changes no output.
# `c_make_encoder` is CPython's private accelerator, called with the arguments
# JSONEncoder.iterencode passes it. Kept because encoding is the drafts' hot step in a bulk
# ingest: building it once takes about 40% off each event's encoding (72 -> 42 us measured on
# a lease's state). Where it is missing (not CPython) the public encode is used, and
# tests/unit/test_drafts.py checks the bytes against the library's mapper either way.
_ENCODE = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False,
    True) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
_TYPE_TO_TOPIC: dict[str, str] = {name: topic for topic, name in TOPIC_TO_TYPE.items()}
# Orders a batch's events as its lines came, whichever records they belong to.
_SEQUENCE = itertools.count()


@dataclass(frozen=True, slots=True)
class DraftEvent:
    type: str  # e.g. "LeaseSigned"
    version: int
    data: dict[str, Any]
    timestamp: datetime
    seq: int


class DraftRecord:
    """A record being staged in bulk: its folded state plus the events not yet stored."""

    __slots__ = ("id", "pending_events", "state")

    def __init__(self, state: RecordState) -> None:
        self.id: UUID = record_uuid(state.kind, state.record_id)
        self.state = state
        self.pending_events: list[DraftEvent] = []

    @property
    def record_id(self) -> str:
        return self.state.record_id

    @property
    def version(self) -> int:
        return self.state.version

    @classmethod
    def open(cls, kind: str, record_id: str, data: dict[str, Any]) -> "DraftRecord":
        spec = ALL_KINDS[kind]
        draft = cls(RecordState(spec, record_id))
        draft._append(spec.events[Role.CREATE], data)
        check_state(draft.state)
        return draft

    @classmethod
    def load(cls, kind: str, record_id: str, stored: Iterable[StoredEvent]) -> "DraftRecord":
        """A record as its stored events leave it."""
        draft = cls(RecordState(ALL_KINDS[kind], record_id))
        for event in stored:
            payload = json.loads(event.state)
            draft.state.apply(LoggedEvent(TOPIC_TO_TYPE[event.topic], payload["data"]))
        return draft

    def record(self, role: Role, data: dict[str, Any]) -> None:
        """Record a later event after the same check the aggregate makes."""
        event_type = self.state.spec.events[role]
        check_event(self.state, LoggedEvent(event_type, data))
        self._append(event_type, data)

    def _append(self, event_type: str, data: dict[str, Any]) -> None:
        self.state.apply(LoggedEvent(event_type, data))
        self.pending_events.append(
            DraftEvent(event_type, self.state.version, data, datetime_now_with_tzinfo(),
                       next(_SEQUENCE)))


def stored_events(drafts: Iterable[DraftRecord]) -> list[StoredEvent]:
    """The drafts' new events, in the order they were staged, as the library's mapper stores
    an aggregate's events: a created event carries its originator's topic, every event its
    timestamp, record id and data."""
    events = sorted(((e, d) for d in drafts for e in d.pending_events), key=lambda p: p[0].seq)
    return [_stored(event, draft) for event, draft in events]


def _stored(event: DraftEvent, draft: DraftRecord) -> StoredEvent:
    state: dict[str, Any] = {
        "timestamp": {"_type_": "datetime_iso", "_data_": event.timestamp.isoformat()}}
    if event.version == 1:
        state["originator_topic"] = AGGREGATES[draft.state.kind].TOPIC
    state["record_id"] = draft.record_id
    state["data"] = event.data
    text = "".join(_ENCODE(state, 0)) if _ENCODE is not None else _ENCODER.encode(state)
    return StoredEvent(draft.id, event.version, _TYPE_TO_TOPIC[event.type], text.encode())
