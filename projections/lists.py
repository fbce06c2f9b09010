"""Every record of a kind on `as_of` as known at `known_at`, in id order, a page at a time,
with the filters users ask for: GET /v1/{collection}."""

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from domain.aggregates import AGGREGATES
from domain.kinds import KINDS
from domain.records import LoggedEvent, fold
from projections.records import ReadService, RecordView, record_view
from projections.views import Entry, Moment

# The field that names the firm a record belongs to, for `firm_id=`: kinds without one
# (chip models, data centres, regulations) take no such filter.
FIRM_FIELD: dict[str, str] = {
    "firm": "parent_firm_id",
    "lease": "firm_id",
    "licence": "holder_firm_id",
    "shipment": "consignee_firm_id",
    "processing_activity": "firm_id",
}


@dataclass(frozen=True)
class ListFilter:
    """What a list keeps; None keeps everything. `status` is the record's lifecycle."""

    firm_id: str | None = None
    status: str | None = None
    in_force: bool | None = None  # regulations: in force on as_of (active)
    expiring_before: date | None = None  # licences: valid_to before this date

    def tests(self, kind: str) -> list[Callable[[RecordView], bool]]:
        checks: list[Callable[[RecordView], bool]] = []
        if self.firm_id is not None:
            name = FIRM_FIELD[kind]
            checks.append(lambda v: v.facts.get(name) == self.firm_id)
        if self.status is not None:
            checks.append(lambda v: v.lifecycle == self.status)
        if self.in_force is not None:
            checks.append(lambda v: (v.lifecycle == "active") is self.in_force)
        if self.expiring_before is not None:
            checks.append(self._expires_in_time)
        return checks

    def _expires_in_time(self, view: RecordView) -> bool:
        valid_to, before = view.facts.get("valid_to"), self.expiring_before
        return bool(valid_to and before and date.fromisoformat(valid_to) < before)


@dataclass(frozen=True)
class RecordsPage:
    position: int
    records: list[RecordView]
    next_after: str | None  # the last id of this page when there are more


class ListService(ReadService):
    """The record reads, and their lists."""

    def records_page(self, kind: str, moment: Moment, limit: int, after: str | None,
                     keep: ListFilter) -> RecordsPage:
        """GET /v1/{collection}: the records after id `after` that pass `keep`."""
        position = self.log.position_at(moment.known_at)
        by_record = _by_record(self.log.entries_of_topics(_topics(kind), upto=position))
        tests = keep.tests(kind)
        chosen: list[RecordView] = []
        for record_id in sorted(i for i in by_record if after is None or i > after):
            view = _view(kind, record_id, by_record[record_id], moment, position)
            if all(test(view) for test in tests):
                chosen.append(view)
                if len(chosen) > limit:
                    break
        more = len(chosen) > limit
        return RecordsPage(position, chosen[:limit],
                           chosen[limit - 1].record_id if more else None)


def _topics(kind: str) -> list[str]:
    aggregate = AGGREGATES[kind]
    return [getattr(aggregate, name).TOPIC for name in KINDS[kind].events.values()]


def _by_record(entries: Sequence[Entry]) -> dict[str, list[Entry]]:
    grouped: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        grouped[entry.record_id].append(entry)
    return grouped


def _view(kind: str, record_id: str, entries: list[Entry], moment: Moment, position: int
          ) -> RecordView:
    state = fold(kind, record_id, [LoggedEvent(e.type, e.data, e.position) for e in entries])
    last: datetime = entries[-1].recorded_at
    return record_view(state, moment, position, last)
