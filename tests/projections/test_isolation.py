"""The projection's logic isolates a subject whose evaluation raises (no database here)."""

from datetime import UTC, date, datetime
from typing import Any

from domain.world import SubjectRef
from projections.findings import Commit, FindingsProjection, LogEvent

RULE = {"kind": "export_licence", "licence_authority": "US-BIS",
        "chips": {"models": ["nvidia-h20"]}, "to_countries": ["CN"]}
SHIPMENT = {"chip_model": "nvidia-h20", "quantity": 800, "from_country": "US",
            "to_country": "CN", "shipped_on": "2025-06-01"}
BAD = SubjectRef("shipment", "s-bad")


class Log:
    """Commits fed to a projection one by one, as the runner would."""

    def __init__(self) -> None:
        self.projection = FindingsProjection()
        self.position = 0

    def commit(self, *events: tuple[str, str, str, dict[str, Any]]) -> Commit:
        logged = []
        for kind, record_id, event_type, data in events:
            self.position += 1
            logged.append(LogEvent(self.position, datetime(2025, 7, 1, tzinfo=UTC)
                                   .replace(microsecond=self.position), kind, record_id,
                                   event_type, data))
        return self.projection.apply_commit(logged)


def _world() -> Log:
    log = Log()
    log.commit(("chip_model", "nvidia-h20", "ChipModelRegistered",
                {"vendor": "NVIDIA", "origin_country": "US", "tpp": 2368,
                 "performance_density": 2.9}),
               ("firm", "alibaba", "FirmRegistered", {"name": "Alibaba", "hq_country": "CN"}),
               ("firm", "bytedance", "FirmRegistered", {"name": "ByteDance", "hq_country": "CN"}),
               ("regulation", "reg", "RegulationEnacted",
                {"authority": "US-BIS", "title": "H20", "citation": "cite",
                 "effective_from": "2025-04-09", "rule": RULE}))
    return log


def _shipment(record_id: str, firm_id: str, **fields: Any) -> tuple[str, str, str, dict[str, Any]]:
    return ("shipment", record_id, "ShipmentRecorded",
            {**SHIPMENT, "consignee_firm_id": firm_id, **fields})


def test_a_subject_whose_evaluation_raises_is_reported_and_the_others_of_its_commit_go_on():
    log = _world()
    commit = log.commit(_shipment("s-bad", "alibaba", shipped_on="2025-02-30"),
                        _shipment("s-good", "bytedance"))
    [failure] = commit.failed
    assert (failure.key, failure.firm_id) == ("shipment/s-bad", "alibaba")
    assert failure.reason == "ValueError: day is out of range for month"
    assert [(f.subject_id, f.valid_from) for f in commit.opened] == [
        ("s-good", date(2025, 6, 1))]
    assert any(m.payload.get("firm_id") == "bytedance" for m in commit.messages)


def test_a_failed_subject_keeps_its_open_findings_until_it_evaluates_again():
    log = _world()
    log.commit(_shipment("s-bad", "alibaba"))
    held = dict(log.projection.open[BAD])
    # A correction to a day that does not exist: nothing opens or closes, the failure is told.
    poisoned = log.commit(("shipment", "s-bad", "ShipmentCorrected",
                           {"shipped_on": "2025-02-30"}))
    assert (poisoned.opened, poisoned.closed, poisoned.messages[:-1]) == ([], [], [])
    assert [f.key for f in poisoned.failed] == ["shipment/s-bad"]
    assert log.projection.open[BAD] == held
    # A correction to a real day evaluates: the subject is recovered and its rows move.
    cured = log.commit(("shipment", "s-bad", "ShipmentCorrected", {"shipped_on": "2025-06-02"}))
    assert (cured.failed, cured.recovered) == ([], [BAD])
    assert [f.valid_from for f in cured.opened] == [date(2025, 6, 2)]
    assert [o.finding.valid_from for o in cured.closed] == [date(2025, 6, 1)]


def test_a_subject_evaluated_fine_is_not_reported_recovered_unless_it_had_failed():
    log = _world()
    assert log.commit(_shipment("s-1", "alibaba")).recovered == []
    log.projection.restore([], [], failing=[SubjectRef("shipment", "s-1")])
    commit = log.commit(("shipment", "s-1", "ShipmentCorrected", {"quantity": 900}))
    assert commit.recovered == [SubjectRef("shipment", "s-1")]
