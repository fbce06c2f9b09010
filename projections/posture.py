"""Posture, residency, timelines, restatements and the firm list: the read side's use cases,
each answering one endpoint with one call, from the bitemporal read models.

Every answer reflects one position (see `Reading`); "holds on this day" is decided once, by
the read model's query.
"""

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from domain.aggregates import Firm
from domain.dates import day_after
from domain.errors import RecordNotFoundError, Unavailable
from domain.evaluator import (
    Finding,
    Posture,
    Processing,
    residency_from,
    status_changes,
    timeline,
    worst,
)
from domain.ids import record_uuid
from domain.kinds import FIRM
from domain.records import LoggedEvent, fold
from domain.types import Status
from domain.world import World
from projections.findings import PROJECTION_NAME
from projections.views import FindingsView, LogReader, Moment, Reading

MAX_WAIT_SECONDS = 5.0  # how long a read waits for the read models to reach min_position

Interval = tuple[date, date, Status]


class ProjectionBehindError(Unavailable):
    title = "Read models behind"
    retry_after = 1

    def __init__(self, wanted: int, reached: int) -> None:
        super().__init__()
        self.wanted, self.reached = wanted, reached

    def __str__(self) -> str:
        return (f"the read models have reached position {self.reached}, not yet "
                f"{self.wanted}; retry shortly")


@dataclass(frozen=True)
class Restatement:
    position: int
    recorded_at: datetime
    events: list[dict[str, Any]]
    changes: list[tuple[date, date, Status, Status]]


class Residency(NamedTuple):
    status: Status
    findings: list[Finding]
    processing: list[Processing]


class Timeline(NamedTuple):
    start: date
    end: date
    intervals: list[Interval]


@dataclass(frozen=True)
class FirmRow:
    """One line of the firm list: its facts, posture and residency status."""

    firm_id: str
    facts: dict[str, Any]
    status: Status
    residency_status: Status


@dataclass(frozen=True)
class FirmsPage:
    firms: list[FirmRow]
    next_cursor: str | None


@dataclass(frozen=True)
class PosturePage:
    """A firm's posture with one page of its findings, and how many there are by status."""

    posture: Posture
    counts: dict[str, int]
    next_after: tuple[str, str, str] | None  # the last finding's key, when there are more


@dataclass(frozen=True)
class PosturesPage:
    """One page of every firm's posture, and how many firms have each status."""

    postures: list[Posture]
    counts: dict[str, int]
    next_after: str | None  # the last firm id of this page, when there are more


def holding_posture(firm_id: str, holding: list[Finding], as_of: date) -> Posture:
    """A firm's posture from its findings that hold on `as_of` (already chosen by the read
    model's query: not decided a second time here)."""
    return Posture(firm_id, as_of, worst(f.status for f in holding),
                   sorted(holding, key=lambda f: f.key))


class PostureService:
    def __init__(self, log: LogReader, findings: FindingsView) -> None:
        self.log, self.findings = log, findings
        self.store = log  # its name before projections/: the workbench reads it so

    # one call per endpoint -------------------------------------------------------------------

    def firm_posture(self, firm_id: str, moment: Moment) -> tuple[Reading, Posture]:
        """GET /v1/firms/{id}/posture."""
        reading = self.known_firm(firm_id, moment)
        return reading, self.posture(firm_id, reading)

    def firm_posture_page(self, firm_id: str, moment: Moment, limit: int,
                          after: tuple[str, str, str] | None) -> tuple[Reading, PosturePage]:
        """GET /v1/firms/{id}/posture?limit=&cursor=: the status from the counts, and one
        page of findings (limit + 1 asked, to know whether there is another)."""
        reading = self.known_firm(firm_id, moment)
        position, day = reading.position, reading.as_of
        counts = self.findings.status_counts(position=position, firm_id=firm_id, day=day)
        rows = self.findings.findings_page(position=position, firm_id=firm_id, day=day,
                                           limit=limit + 1, after=after)
        status = worst(Status(s) for s, n in counts.items() if n)
        more = rows[limit - 1].key if len(rows) > limit else None
        return reading, PosturePage(Posture(firm_id, reading.as_of, status, rows[:limit]),
                                    counts, more)

    def firm_residency(self, firm_id: str, moment: Moment) -> tuple[Reading, Residency]:
        """GET /v1/firms/{id}/residency."""
        reading = self.known_firm(firm_id, moment)
        return reading, self.residency(firm_id, reading)

    def firm_timeline(self, firm_id: str, moment: Moment, start: date | None,
                      end: date | None) -> tuple[Reading, Timeline]:
        """GET /v1/firms/{id}/timeline (the moment's as_of is not used: every date is)."""
        reading = self.known_firm(firm_id, moment)
        return reading, self.timeline(firm_id, reading.position, start, end)

    def firm_restatements(self, firm_id: str, known_from: datetime | None, moment: Moment
                          ) -> tuple[Reading, list[Restatement]]:
        """GET /v1/firms/{id}/restatements: commits in (known_from, moment] that changed it."""
        reading = self.known_firm(firm_id, moment)
        after = self.log.position_at(known_from) if known_from is not None else 0
        return reading, self.restatements(firm_id, after, reading.position)

    def posture_diff(self, firm_id: str, start: Moment, end: Moment
                     ) -> tuple[tuple[Reading, Posture], tuple[Reading, Posture]]:
        """GET /v1/firms/{id}/posture/diff: the firm's posture at two moments."""
        first, last = self.reading(start), self.known_firm(firm_id, end)
        return (first, self.posture(firm_id, first)), (last, self.posture(firm_id, last))

    def every_posture(self, moment: Moment) -> tuple[Reading, list[Posture]]:
        """GET /v1/posture: every firm known at the moment, in id order (no finding:
        compliant)."""
        reading = self.reading(moment)
        postures = self.all_postures(reading)
        firms = sorted(self.firm_facts(reading).keys() | postures.keys())
        return reading, [postures.get(f) or Posture(f, reading.as_of, Status.COMPLIANT, [])
                         for f in firms]

    def firms_page(self, moment: Moment, limit: int, cursor: str | None
                   ) -> tuple[Reading, FirmsPage]:
        """GET /v1/firms: a page of firms after `cursor`, with their statuses."""
        reading = self.reading(moment)
        firms = self.firm_facts(reading)
        ids = sorted(i for i in firms if cursor is None or i > cursor)
        postures = self.all_postures(reading)
        rows = [FirmRow(f, firms[f], postures[f].status if f in postures else Status.COMPLIANT,
                        self.residency(f, reading).status) for f in ids[:limit]]
        return reading, FirmsPage(rows, ids[limit - 1] if len(ids) > limit else None)

    def postures_page(self, moment: Moment, limit: int, after: str | None,
                      status: Status | None) -> tuple[Reading, PosturesPage]:
        """GET /v1/posture?limit=&cursor=&status=: each firm's status from a few rows a firm,
        then the findings of the page's firms only."""
        reading = self.reading(moment)
        statuses = self.firm_statuses(reading)
        counts = Counter(s.value for s in statuses.values())
        ids = [f for f in sorted(statuses) if (after is None or f > after)
               and (status is None or statuses[f] is status)]
        by_firm: dict[str, list[Finding]] = {f: [] for f in ids[:limit]}
        for finding in self.findings.findings_of(position=reading.position,
                                                 firm_ids=list(by_firm), day=reading.as_of):
            by_firm[finding.firm_id].append(finding)
        postures = [holding_posture(f, held, reading.as_of) for f, held in by_firm.items()]
        return reading, PosturesPage(postures, dict(counts),
                                     ids[limit - 1] if len(ids) > limit else None)

    # the steps -------------------------------------------------------------------------------

    def projected(self) -> int:
        return self.findings.tracking(PROJECTION_NAME)

    def head_position(self) -> int:
        head = self.log.head()
        return head.position if head else 0

    def reading(self, moment: Moment) -> Reading:
        position = min(self.log.position_at(moment.known_at), self.projected())
        return Reading(moment.as_of, moment.known_at, position)

    def moment(self, as_of: date, known_at: datetime) -> Reading:
        """`reading` by its former name and arguments."""
        return self.reading(Moment(as_of, known_at))

    def known_firm(self, firm_id: str, moment: Moment) -> Reading:
        """The moment's reading, once the firm is known there (RecordNotFoundError if not)."""
        reading = self.reading(moment)
        self.check_firm(firm_id, reading)
        return reading

    def check_firm(self, firm_id: str, reading: Reading) -> dict[str, Any]:
        entries = self.log.entries_for(record_uuid("firm", firm_id), upto=reading.position)
        if not entries:
            raise RecordNotFoundError("firm", firm_id)
        state = fold("firm", firm_id, [LoggedEvent(e.type, e.data, e.position) for e in entries])
        return state.facts_on(reading.as_of)

    def firm_facts(self, reading: Reading) -> dict[str, dict[str, Any]]:
        """Every firm known at the reading's position, with its facts on its as_of date."""
        topics = [getattr(Firm, name).TOPIC for name in FIRM.events.values()]
        world = World()
        for entry in self.log.entries_of_topics(topics, upto=reading.position):
            world.apply("firm", entry.record_id, LoggedEvent(entry.type, entry.data,
                                                             entry.position))
        return {f.record_id: f.facts_on(reading.as_of) for f in world.of_kind("firm")}

    def firm_statuses(self, reading: Reading) -> dict[str, Status]:
        """Every firm known at the reading, with its worst status on its as_of date."""
        found: dict[str, list[Status]] = {f: [] for f in self.firm_facts(reading)}
        for firm, status in self.findings.firm_statuses(position=reading.position,
                                                        day=reading.as_of):
            found.setdefault(firm, []).append(Status(status))
        return {firm: worst(held) for firm, held in found.items()}

    def posture(self, firm_id: str, reading: Reading) -> Posture:
        rows = self.findings.findings(position=reading.position, firm_id=firm_id,
                                      day=reading.as_of)
        return holding_posture(firm_id, rows, reading.as_of)

    def residency(self, firm_id: str, reading: Reading) -> Residency:
        rows = self.findings.findings(position=reading.position, firm_id=firm_id,
                                      day=reading.as_of)
        pieces = self.findings.pieces(position=reading.position, firm_id=firm_id,
                                      day=reading.as_of)
        return Residency(*residency_from(firm_id, rows, pieces, reading.as_of))

    def all_postures(self, reading: Reading) -> dict[str, Posture]:
        by_firm: dict[str, list[Finding]] = {}
        for finding in self.findings.findings(position=reading.position, day=reading.as_of):
            by_firm.setdefault(finding.firm_id, []).append(finding)  # grouped once
        return {firm: holding_posture(firm, by_firm[firm], reading.as_of)
                for firm in sorted(by_firm)}

    def timeline(self, firm_id: str, position: int, start: date | None, end: date | None
                 ) -> Timeline:
        rows = self.findings.findings(position=position, firm_id=firm_id)
        today = date.today()
        start = start or min((f.valid_from for f in rows), default=today)
        end = end or day_after(max(today, start))
        return Timeline(start, end, timeline(firm_id, rows, start, end))

    def restatements(self, firm_id: str, after: int, upto: int) -> list[Restatement]:
        """Commits in (after, upto] that changed the firm's posture on dates before them."""
        found = (self._restatement(firm_id, position)
                 for position in self.findings.changes_between(firm_id, after, upto))
        return [r for r in found if r is not None]

    def _restatement(self, firm_id: str, position: int) -> Restatement | None:
        """What the commit ending at `position` changed for dates before it, if anything."""
        entry = self.log.entries(after=position - 1, limit=1)[0]
        past_end = entry.recorded_at.date()
        before = self.findings.findings(position=position - 1, firm_id=firm_id)
        after_rows = self.findings.findings(position=position, firm_id=firm_id)
        starts = [f.valid_from for f in set(before) ^ set(after_rows) if f.valid_from < past_end]
        if not starts:
            return None
        old = timeline(firm_id, before, min(starts), past_end)
        changes = status_changes(old, timeline(firm_id, after_rows, min(starts), past_end))
        if not changes:
            return None
        return Restatement(position, entry.recorded_at,
                           self._commit_events(position, entry.recorded_at), changes)

    def _commit_events(self, position: int, recorded_at: datetime) -> list[dict[str, Any]]:
        """The events of the commit that ends at `position` (they share its recorded_at)."""
        return [{"position": e.position, "kind": e.kind, "record_id": e.record_id,
                 "type": e.type}
                for e in self.log.entries_recorded_at(recorded_at, upto=position)]
