"""Records as of a valid date and as known at a record time, and their histories: a
projection of the log, answered in one call per endpoint."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.errors import RecordNotFoundError
from domain.ids import record_uuid
from domain.records import LoggedEvent, RecordState, fold
from domain.times import format_time
from projections.views import Entry, LogReader, Moment, SealedEntry


@dataclass(frozen=True)
class RecordView:
    kind: str
    record_id: str
    as_of: date
    known_at: datetime
    position: int
    version: int
    lifecycle: str  # pending | active | ended
    facts: dict[str, Any]
    ended_from: date | None
    due_diligence_from: date | None
    last_recorded_at: datetime


class ReadService:
    def __init__(self, log: LogReader) -> None:
        self.log = log

    def record(self, kind: str, record_id: str, moment: Moment) -> RecordView:
        """GET /v1/{collection}/{id}: the record on `as_of` as known at `known_at`."""
        position = self.log.position_at(moment.known_at)
        entries = self.log.entries_for(record_uuid(kind, record_id), upto=position)
        if not entries:
            raise RecordNotFoundError(kind, record_id)
        state = fold(kind, record_id, _logged(entries))
        return record_view(state, moment, position, entries[-1].recorded_at)

    def history(self, kind: str, record_id: str) -> Sequence[SealedEntry]:
        """GET /v1/{collection}/{id}/history: the record's events in order."""
        entries = self.log.entries_for(record_uuid(kind, record_id))
        if not entries:
            raise RecordNotFoundError(kind, record_id)
        return entries


def record_view(state: RecordState, moment: Moment, position: int, last_recorded_at: datetime
                ) -> RecordView:
    """A folded record as a read answers it, on the moment's `as_of`."""
    facts = state.facts_on(moment.as_of)
    return RecordView(
        kind=state.kind,
        record_id=state.record_id,
        as_of=moment.as_of,
        known_at=moment.known_at,
        position=position,
        version=state.version,
        lifecycle=_lifecycle(state.spec.span, facts, state.ended_from, moment.as_of),
        facts=facts,
        ended_from=state.ended_from,
        due_diligence_from=state.diligence_from(),
        last_recorded_at=last_recorded_at,
    )


def _logged(entries: Iterable[Entry]) -> list[LoggedEvent]:
    return [LoggedEvent(e.type, e.data, e.position) for e in entries]


def _lifecycle(
    span: tuple[str, str | None] | None, facts: dict[str, Any], ended_from: date | None,
    as_of: date,
) -> str:
    if ended_from is not None and as_of >= ended_from:
        return "ended"
    if span is None:
        return "active"
    start, end = span
    if facts.get(start) and as_of < date.fromisoformat(facts[start]):
        return "pending"
    if end and facts.get(end) and as_of > date.fromisoformat(facts[end]):
        return "ended"
    return "active"


def entry_json(entry: SealedEntry) -> dict[str, Any]:
    """An event as the API and exports show it."""
    return {
        "position": entry.position,
        "recorded_at": format_time(entry.recorded_at),
        "recorded_by": entry.recorded_by.to_json(),
        "kind": entry.kind,
        "record_id": entry.record_id,
        "type": entry.type,
        "version": entry.originator_version,
        "data": entry.data,
        "hash": entry.hash,
        "leaf_hash": entry.leaf_hash,
    }
