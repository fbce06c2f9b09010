"""The engine holds at the ends of the calendar: nothing it computes adds past `date.max`.

Boundary validation keeps new appends to sane dates, but a log written before it (or imported
from elsewhere) may hold any date Python's `date` can. The worlds here are built from logged
events directly, as such a log replays, without the bodies' validation.
"""

from datetime import UTC, date, datetime
from typing import Any

from domain.dates import day_after
from domain.evaluator import (
    Finding,
    findings_for,
    posture_on,
    processing_pieces,
    residency_on,
    status_changes,
    timeline,
)
from domain.kinds import KINDS, Role
from domain.records import LoggedEvent
from domain.types import Status
from domain.world import SubjectRef, World

LAST, FIRST = date.max, date.min
C, V = Status.COMPLIANT, Status.VIOLATION
RECORDED = datetime(2025, 6, 1, 12, tzinfo=UTC)


class OldLog:
    """A World fed raw event data, positions 1, 2, ...: what an unvalidated log replays."""

    def __init__(self) -> None:
        self.world = World()
        self.position = 0

    def log(self, kind: str, record_id: str, role: Role, **data: Any) -> None:
        self.position += 1
        self.world.apply(kind, record_id, LoggedEvent(KINDS[kind].events[role], data,
                                                      self.position))

    def findings(self, kind: str, record_id: str) -> list[Finding]:
        return findings_for(self.world, SubjectRef(kind, record_id))


def _world(rule: dict[str, Any], effective_from: date = FIRST) -> OldLog:
    old = OldLog()
    old.log("chip_model", "nvidia-h20", Role.CREATE, vendor="NVIDIA", origin_country="US",
            tpp=2368, performance_density=2.9)
    old.log("firm", "alibaba", Role.CREATE, name="Alibaba", hq_country="CN")
    old.log("data_centre", "johor-dc1", Role.CREATE, name="Johor", country="MY",
            operator="Op", operator_hq_country="MY")
    old.log("regulation", "reg", Role.CREATE, authority="US-BIS", title="Rule",
            citation="cite", effective_from=effective_from.isoformat(), rule=rule)
    return old


EXPORT = {"kind": "export_licence", "licence_authority": "US-BIS",
          "chips": {"models": ["nvidia-h20"]}, "to_countries": ["CN"]}
REMOTE = {"kind": "remote_compute_access", "lessee_hq_countries": ["CN"],
          "licence_authority": "US-BIS"}
LOCAL = {"kind": "data_localisation", "data_subject_countries": ["CN"]}


def _shipment(old: OldLog, shipped_on: date) -> None:
    old.log("shipment", "s1", Role.CREATE, chip_model="nvidia-h20", quantity=800,
            from_country="US", to_country="CN", consignee_firm_id="alibaba",
            shipped_on=shipped_on.isoformat(), exporter="NVIDIA", licence_id=None)


def _lease(old: OldLog, starts_on: date, ends_on: date | None) -> None:
    old.log("lease", "l1", Role.CREATE, firm_id="alibaba", data_centre_id="johor-dc1",
            chip_model="nvidia-h20", chip_count=8, starts_on=starts_on.isoformat(),
            ends_on=ends_on.isoformat() if ends_on else None, purposes=["training"])


def _activity(old: OldLog, ends_on: date) -> None:
    old.log("processing_activity", "a1", Role.CREATE, firm_id="alibaba",
            purpose="fine_tuning", data_subject_countries=["CN"], sensitive=True,
            starts_on="2025-06-01", data_centre_id="johor-dc1", location_country=None,
            subject_count=None, transfer_mechanism=None, ends_on=ends_on.isoformat())


def _finding(valid_from: date, valid_to: date | None, status: Status = V) -> Finding:
    return Finding("alibaba", "shipment", "s1", "reg", valid_from, valid_to, status, "cite",
                   "why", (1,))


# the helper ------------------------------------------------------------------------------------


def test_the_day_after_an_ordinary_day_is_the_next_day():
    assert day_after(date(2024, 2, 28)) == date(2024, 2, 29)
    assert day_after(FIRST) == date(1, 1, 2)


def test_the_day_after_the_last_day_of_the_calendar_saturates_there():
    assert day_after(LAST) == LAST


# the evaluator ----------------------------------------------------------------------------------


def test_a_shipment_on_the_last_day_of_the_calendar_is_judged_on_it():
    old = _world(EXPORT)
    _shipment(old, LAST)
    [finding] = old.findings("shipment", "s1")
    assert (finding.valid_from, finding.valid_to, finding.status) == (LAST, None, V)
    assert posture_on("alibaba", [finding], LAST).status is V


def test_a_shipment_on_the_first_day_of_the_calendar_is_judged_on_it():
    old = _world(EXPORT)
    _shipment(old, FIRST)
    [finding] = old.findings("shipment", "s1")
    assert (finding.valid_from, finding.status) == (FIRST, V)


def test_a_lease_running_through_the_whole_calendar_is_caught_on_every_day_of_it():
    old = _world(REMOTE)
    _lease(old, FIRST, LAST)
    [finding] = old.findings("lease", "l1")
    assert (finding.valid_from, finding.valid_to, finding.status) == (FIRST, None, V)
    assert finding.holds_on(FIRST)
    assert finding.holds_on(LAST)


def test_a_licence_valid_through_the_last_day_covers_a_lease_to_the_end_of_time():
    old = _world(REMOTE)
    old.log("licence", "lic", Role.CREATE, authority="US-BIS", holder_firm_id="alibaba",
            chip_models=["nvidia-h20"], destination_countries=["MY"],
            valid_from="2025-01-01", valid_to=LAST.isoformat(), quantity=None)
    _lease(old, date(2024, 1, 1), None)
    spans = [(f.valid_from, f.valid_to, f.status) for f in old.findings("lease", "l1")]
    assert spans == [(date(2024, 1, 1), date(2025, 1, 1), V), (date(2025, 1, 1), None, C)]


def test_an_activity_ending_on_the_last_day_is_processed_and_judged_through_it():
    old = _world(LOCAL)
    _activity(old, LAST)
    [finding] = old.findings("processing_activity", "a1")
    assert (finding.valid_from, finding.valid_to, finding.status) == (date(2025, 6, 1), None, V)
    activity = old.world.get("processing_activity", "a1")
    assert activity is not None
    [piece] = processing_pieces(old.world, activity)
    assert (piece.valid_from, piece.processed_in) == (date(2025, 6, 1), "MY")
    status, _, processing = residency_on(old.world, "alibaba", [finding], LAST)
    assert status is V
    assert [(p.data_subject_country, p.processed_in) for p in processing] == [("CN", "MY")]


# timelines and their differences ---------------------------------------------------------------


def test_a_timeline_can_run_from_the_first_to_the_last_day_of_the_calendar():
    findings = [_finding(FIRST, date(2000, 1, 1), C), _finding(date(2000, 1, 1), None, V)]
    assert timeline("alibaba", findings, FIRST, LAST) == [
        (FIRST, date(2000, 1, 1), C), (date(2000, 1, 1), LAST, V)]


def test_status_changes_between_timelines_that_reach_the_last_day():
    old = [(FIRST, LAST, C)]
    new = [(FIRST, date(2000, 1, 1), C), (date(2000, 1, 1), LAST, V)]
    assert status_changes(old, new) == [(date(2000, 1, 1), LAST, C, V)]
