"""The projection and its outbox hold at the ends of the calendar, as the evaluator does
(tests/domain/test_calendar_edges.py): nothing they compute adds past `date.max`."""

from datetime import date

from projections.findings import FindingsProjection, LogEvent
from projections.outbox import LEDGER_APPENDED, POSTURE_CHANGED, announce, firm_changes
from tests.domain.test_calendar_edges import EXPORT, FIRST, LAST, RECORDED, C, V, _finding

# the outbox -------------------------------------------------------------------------------------


def test_a_posture_change_up_to_the_last_day_is_announced_up_to_it():
    after = {_finding(date(2025, 6, 1), LAST)}
    changes = firm_changes("alibaba", set(), after, RECORDED.date())
    assert changes == [(date(2025, 6, 1), LAST, C, V, False)]


def test_an_open_ended_change_seen_from_the_last_day_stays_open_ended():
    before = {_finding(FIRST, LAST, C)}
    after = {_finding(FIRST, None, V)}
    assert firm_changes("alibaba", before, after, RECORDED.date()) == [
        (FIRST, RECORDED.date(), C, V, True), (RECORDED.date(), None, C, V, False)]


def test_announcing_a_finding_from_the_last_day_of_the_calendar_does_not_overflow():
    # A change that begins on date.max itself falls past the saturated span: the commit is
    # still announced (ledger.appended), and no posture change is invented.
    after = {"alibaba": {_finding(LAST, None)}}
    events = [{"position": 5, "kind": "shipment", "record_id": "s1", "type": "ShipmentRecorded"}]
    messages = announce(5, RECORDED, events, {"alibaba": set()}, after, {})
    assert [m.event_type for m in messages] == [LEDGER_APPENDED]


def test_announcing_a_finding_from_the_first_day_of_the_calendar_is_a_restatement():
    after = {"alibaba": {_finding(FIRST, None)}}
    events = [{"position": 5, "kind": "shipment", "record_id": "s1", "type": "ShipmentRecorded"}]
    messages = announce(5, RECORDED, events, {"alibaba": set()}, after, {})
    posture = [m.payload for m in messages if m.event_type == POSTURE_CHANGED]
    assert [(p["as_of"], p["as_of_until"], p["restatement"]) for p in posture] == [
        ("0001-01-01", "2025-06-01", True), ("2025-06-01", None, False)]


def test_the_projection_takes_a_commit_of_records_at_both_ends_of_the_calendar():
    projection = FindingsProjection()
    raw = [
        ("chip_model", "nvidia-h20", "ChipModelRegistered",
         {"vendor": "NVIDIA", "origin_country": "US", "tpp": 2368, "performance_density": 2.9}),
        ("firm", "alibaba", "FirmRegistered", {"name": "Alibaba", "hq_country": "CN"}),
        ("regulation", "reg", "RegulationEnacted",
         {"authority": "US-BIS", "title": "Rule", "citation": "cite",
          "effective_from": FIRST.isoformat(), "rule": EXPORT}),
        ("shipment", "s-last", "ShipmentRecorded",
         {"chip_model": "nvidia-h20", "quantity": 1, "from_country": "US", "to_country": "CN",
          "consignee_firm_id": "alibaba", "shipped_on": LAST.isoformat()}),
        ("shipment", "s-first", "ShipmentRecorded",
         {"chip_model": "nvidia-h20", "quantity": 1, "from_country": "US", "to_country": "CN",
          "consignee_firm_id": "alibaba", "shipped_on": FIRST.isoformat()}),
    ]
    events = [LogEvent(n, RECORDED, kind, rid, kind_type, data)
              for n, (kind, rid, kind_type, data) in enumerate(raw, 1)]
    commit = projection.apply_commit(events)
    assert sorted((f.subject_id, f.valid_from) for f in commit.opened) == [
        ("s-first", FIRST), ("s-last", LAST)]
    assert commit.failed == []
