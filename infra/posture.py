"""Posture, residency, timelines and restatements, read from the bitemporal read model.

Every answer reflects one position: the last one recorded at `known_at`, or the read model's
own position when it has not got that far yet (the answer says which). The position is read on
the primary; the answer's rows come from a read replica that has replayed that far, when one
has (infra.replicas), else from the primary.
"""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.aggregates import Firm
from domain.dates import day_after
from domain.errors import LedgerError, RecordNotFoundError
from domain.evaluator import (
    Finding,
    Posture,
    Processing,
    posture_on,
    residency_from,
    status_changes,
    timeline,
)
from domain.ids import record_uuid
from domain.kinds import FIRM
from domain.records import LoggedEvent, fold
from domain.types import Status
from domain.world import World
from infra.bootstrap import Container
from infra.findings_store import FindingsStore
from infra.replicas import ReplicaSet
from projections.findings import PROJECTION_NAME

MAX_WAIT_SECONDS = 5.0  # how long a read waits for the read models to reach min_position


class ProjectionBehindError(LedgerError):
    def __init__(self, wanted: int, reached: int) -> None:
        super().__init__()
        self.wanted, self.reached = wanted, reached

    def __str__(self) -> str:
        return (f"the read models have reached position {self.reached}, not yet "
                f"{self.wanted}; retry shortly")


@dataclass(frozen=True)
class Moment:
    as_of: date
    known_at: datetime
    position: int


@dataclass(frozen=True)
class Restatement:
    position: int
    recorded_at: datetime
    events: list[dict[str, Any]]
    changes: list[tuple[date, date, Status, Status]]


class PostureService:
    def __init__(self, container: Container) -> None:
        self.store = container.store
        self.findings = FindingsStore(container.store.dialect)
        self.sources = ReplicaSet(container)

    def projected(self) -> int:
        return self.findings.tracking(PROJECTION_NAME)

    def head_position(self) -> int:
        head = self.store.head()
        return head.position if head else 0

    def moment(self, as_of: date, known_at: datetime) -> Moment:
        return Moment(as_of, known_at, min(self.store.position_at(known_at), self.projected()))

    def check_firm(self, firm_id: str, moment: Moment) -> dict[str, Any]:
        source = self.sources.source(moment.position)
        entries = source.store.entries_for(record_uuid("firm", firm_id), upto=moment.position)
        if not entries:
            raise RecordNotFoundError("firm", firm_id)
        state = fold("firm", firm_id, [LoggedEvent(e.type, e.data, e.position) for e in entries])
        return state.facts_on(moment.as_of)

    def firm_facts(self, moment: Moment) -> dict[str, dict[str, Any]]:
        """Every firm known at the moment's position, with its facts on its as_of date."""
        topics = [getattr(Firm, name).TOPIC for name in FIRM.events.values()]
        world = World()
        source = self.sources.source(moment.position)
        for entry in source.store.entries_of_topics(topics, upto=moment.position):
            world.apply("firm", entry.record_id, LoggedEvent(entry.type, entry.data,
                                                             entry.position))
        return {f.record_id: f.facts_on(moment.as_of) for f in world.of_kind("firm")}

    def posture(self, firm_id: str, moment: Moment) -> Posture:
        findings = self.sources.source(moment.position).findings
        rows = findings.findings(position=moment.position, firm_id=firm_id, day=moment.as_of)
        return posture_on(firm_id, rows, moment.as_of)

    def residency(self, firm_id: str, moment: Moment
                  ) -> tuple[Status, list[Finding], list[Processing]]:
        findings = self.sources.source(moment.position).findings
        rows = findings.findings(position=moment.position, firm_id=firm_id, day=moment.as_of)
        pieces = findings.pieces(position=moment.position, firm_id=firm_id, day=moment.as_of)
        return residency_from(firm_id, rows, pieces, moment.as_of)

    def all_postures(self, moment: Moment) -> dict[str, Posture]:
        rows = self.sources.source(moment.position).findings.findings(
            position=moment.position, day=moment.as_of)
        by_firm: dict[str, list[Finding]] = {}
        for finding in rows:  # grouped once: posture_on over every row per firm was quadratic
            by_firm.setdefault(finding.firm_id, []).append(finding)
        return {firm: posture_on(firm, by_firm[firm], moment.as_of) for firm in sorted(by_firm)}

    def timeline(self, firm_id: str, position: int, start: date | None, end: date | None
                 ) -> tuple[date, date, list[tuple[date, date, Status]]]:
        rows = self.sources.source(position).findings.findings(position=position,
                                                              firm_id=firm_id)
        today = date.today()
        start = start or min((f.valid_from for f in rows), default=today)
        end = end or day_after(max(today, start))
        return start, end, timeline(firm_id, rows, start, end)

    def restatements(self, firm_id: str, after: int, upto: int) -> list[Restatement]:
        """Commits in (after, upto] that changed the firm's posture on dates before them."""
        found = []
        for position in self.findings.changes_between(firm_id, after, upto):
            entry = self.store.entries(after=position - 1, limit=1)[0]
            past_end = entry.recorded_at.date()
            before = self.findings.findings(position=position - 1, firm_id=firm_id)
            after_rows = self.findings.findings(position=position, firm_id=firm_id)
            starts = [f.valid_from for f in set(before) ^ set(after_rows)
                      if f.valid_from < past_end]
            if not starts:
                continue
            start = min(starts)
            old = timeline(firm_id, before, start, past_end)
            new = timeline(firm_id, after_rows, start, past_end)
            changes = status_changes(old, new)
            if changes:
                found.append(Restatement(position, entry.recorded_at,
                                         self._commit_events(position, entry.recorded_at),
                                         changes))
        return found

    def _commit_events(self, position: int, recorded_at: datetime) -> list[dict[str, Any]]:
        """The events of the commit that ends at `position` (they share its recorded_at)."""
        return [{"position": e.position, "kind": e.kind, "record_id": e.record_id,
                 "type": e.type}
                for e in self.store.entries_recorded_at(recorded_at, upto=position)]
