"""How a record is folded from its events, and what its facts are on a given valid date."""

from datetime import date
from typing import Any

import pytest

from domain.errors import InvalidRecordError
from domain.records import LoggedEvent, RecordState, check_event, check_state, fold
from tests.support.data import ACTIVITY_STARTED, ALIBABA_SG, LEASE_SIGNED, facts_of
from tests.support.data import LICENCE as STORY_LICENCE

LEASE = LEASE_SIGNED
ACTIVITY = ACTIVITY_STARTED
FIRM = facts_of(ALIBABA_SG)
REGULATION = {"authority": "US-BIS", "title": "AI Diffusion", "citation": "90 FR 4544",
              "effective_from": "2025-01-13", "compliance_from": "2025-05-15",
              "published_on": "2025-01-15",
              "rule": {"kind": "data_localisation", "data_subject_countries": ["CN"]}}
# A licence with an end, which the story's licence has not.
LICENCE = {**facts_of(STORY_LICENCE), "valid_to": "2026-08-07", "quantity": None}


def ev(type_: str, position: int | None = None, **data: Any) -> LoggedEvent:
    return LoggedEvent(type_, data, position)


def lease(*later: LoggedEvent, **overrides: Any) -> RecordState:
    return fold("lease", "lease-ali-johor", [ev("LeaseSigned", **{**LEASE, **overrides}), *later])


def activity(*later: LoggedEvent, **overrides: Any) -> RecordState:
    return fold("processing_activity", "ft-bank-sg",
                [ev("ProcessingStarted", **{**ACTIVITY, **overrides}), *later])


D = date.fromisoformat


# facts on a day ------------------------------------------------------------------------------


def test_facts_on_any_day_are_the_record_as_first_recorded_when_nothing_followed():
    state = lease()
    assert state.facts_on(D("2025-01-01")) == LEASE
    assert state.facts_on(D("2030-01-01")) == LEASE
    assert state.version == 1


def test_a_correction_replaces_the_named_fields_for_all_valid_time():
    state = lease(ev("LeaseCorrected", chip_count=1024, reason="typo in the contract summary"))
    for day in ("2025-01-01", "2025-04-01", "2026-01-01"):
        assert state.facts_on(D(day)) == {**LEASE, "chip_count": 1024}


def test_a_correction_reason_is_not_a_fact_of_the_record():
    state = lease(ev("LeaseCorrected", chip_count=1024, reason="typo"))
    assert "reason" not in state.original
    assert "reason" not in state.facts_on(D("2025-05-01"))


def test_the_created_facts_keep_the_record_as_first_recorded_after_corrections():
    state = lease(ev("LeaseCorrected", chip_count=1024))
    assert state.created == LEASE
    assert state.original["chip_count"] == 1024


def test_corrections_of_the_same_field_apply_in_the_order_they_were_recorded():
    state = lease(ev("LeaseCorrected", chip_count=1024), ev("LeaseCorrected", chip_count=512))
    assert state.facts_on(D("2025-05-01"))["chip_count"] == 512
    state = lease(ev("LeaseCorrected", chip_count=512), ev("LeaseCorrected", chip_count=1024))
    assert state.facts_on(D("2025-05-01"))["chip_count"] == 1024


def test_an_amendment_holds_from_its_effective_date_and_not_before():
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096))
    assert state.facts_on(D("2025-05-31"))["chip_count"] == 2048
    assert state.facts_on(D("2025-06-01"))["chip_count"] == 4096
    assert state.facts_on(D("2025-09-30"))["chip_count"] == 4096


def test_an_amendment_changes_only_the_fields_it_names():
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096))
    assert state.facts_on(D("2025-06-01")) == {**LEASE, "chip_count": 4096}


def test_an_amendment_does_not_carry_its_effective_date_as_a_fact():
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096))
    assert "effective_from" not in state.facts_on(D("2025-07-01"))


def test_amendments_apply_in_order_of_effective_date_not_the_order_recorded():
    state = lease(
        ev("LeaseAmended", effective_from="2025-08-01", chip_count=8192),
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
    )
    assert state.facts_on(D("2025-05-01"))["chip_count"] == 2048
    assert state.facts_on(D("2025-07-01"))["chip_count"] == 4096
    assert state.facts_on(D("2025-08-01"))["chip_count"] == 8192


def test_amendments_effective_the_same_day_apply_in_the_order_recorded():
    state = lease(
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=1000),
    )
    assert state.facts_on(D("2025-06-01"))["chip_count"] == 1000
    state = lease(
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=1000),
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
    )
    assert state.facts_on(D("2025-06-01"))["chip_count"] == 4096


def test_a_correction_of_chip_count_does_not_undo_a_later_amendment_of_chip_count():
    state = lease(
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
        ev("LeaseCorrected", chip_count=1024, reason="the signed count was 1024"),
    )
    assert state.facts_on(D("2025-06-01"))["chip_count"] == 4096
    assert state.facts_on(D("2025-09-01"))["chip_count"] == 4096


def test_a_correction_of_chip_count_fixes_the_value_before_a_later_amendment():
    state = lease(
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
        ev("LeaseCorrected", chip_count=1024),
    )
    assert state.facts_on(D("2025-04-01"))["chip_count"] == 1024
    assert state.facts_on(D("2025-05-31"))["chip_count"] == 1024


def test_a_correction_recorded_before_an_amendment_is_also_overridden_from_its_date():
    state = lease(
        ev("LeaseCorrected", chip_count=1024),
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
    )
    assert state.facts_on(D("2025-05-31"))["chip_count"] == 1024
    assert state.facts_on(D("2025-06-01"))["chip_count"] == 4096


def test_a_firm_change_of_parent_holds_from_its_date():
    state = fold("firm", "alibaba-sg", [
        ev("FirmRegistered", **FIRM),
        ev("FirmChanged", effective_from="2025-03-01", parent_firm_id=None),
    ])
    assert state.facts_on(D("2025-02-28"))["parent_firm_id"] == "alibaba"
    assert state.facts_on(D("2025-03-01"))["parent_firm_id"] is None


def test_a_regulation_amendment_swaps_the_rule_from_its_effective_date():
    new_rule = {"kind": "data_localisation", "data_subject_countries": ["CN", "HK"]}
    state = fold("regulation", "cn-pipl", [
        ev("RegulationEnacted", **REGULATION),
        ev("RegulationAmended", effective_from="2025-07-01", rule=new_rule),
    ])
    assert state.facts_on(D("2025-06-30"))["rule"] == REGULATION["rule"]
    assert state.facts_on(D("2025-07-01"))["rule"] == new_rule
    assert state.facts_on(D("2025-07-01"))["compliance_from"] == "2025-05-15"


def test_facts_on_does_not_change_the_state_it_reads():
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096))
    state.facts_on(D("2025-07-01"))
    assert state.original == LEASE
    assert state.changes[0].fields == {"chip_count": 4096}


def test_folding_does_not_change_the_logged_event_data():
    amended = ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096)
    corrected = ev("LeaseCorrected", chip_count=1024, reason="typo")
    lease(amended, corrected)
    assert amended.data == {"effective_from": "2025-06-01", "chip_count": 4096}
    assert corrected.data == {"chip_count": 1024, "reason": "typo"}


def test_the_version_counts_every_event():
    state = lease(
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
        ev("LeaseCorrected", chip_count=1024),
        ev("DueDiligenceRecorded", completed_on="2025-05-01", reference="DD-1"),
        ev("LeaseTerminated", effective_from="2025-08-01"),
    )
    assert state.version == 5


def test_change_dates_are_the_distinct_effective_dates_in_order():
    state = lease(
        ev("LeaseAmended", effective_from="2025-08-01", chip_count=8192),
        ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096),
        ev("LeaseAmended", effective_from="2025-06-01", purposes=["inference"]),
    )
    assert state.change_dates() == [D("2025-06-01"), D("2025-08-01")]


# processing activities: a data centre or a country ----------------------------------------------


def test_a_change_naming_a_country_clears_the_data_centre_from_its_date():
    state = activity(ev("ProcessingChanged", effective_from="2025-07-01", location_country="CN"))
    assert state.facts_on(D("2025-06-30"))["data_centre_id"] == "johor-dc1"
    assert state.facts_on(D("2025-06-30"))["location_country"] is None
    assert state.facts_on(D("2025-07-01"))["data_centre_id"] is None
    assert state.facts_on(D("2025-07-01"))["location_country"] == "CN"


def test_a_change_naming_a_data_centre_clears_the_country_from_its_date():
    state = activity(
        ev("ProcessingChanged", effective_from="2025-07-01", data_centre_id="sg-dc2"),
        data_centre_id=None, location_country="CN",
    )
    assert state.facts_on(D("2025-06-30"))["location_country"] == "CN"
    assert state.facts_on(D("2025-07-01"))["data_centre_id"] == "sg-dc2"
    assert state.facts_on(D("2025-07-01"))["location_country"] is None


def test_a_correction_naming_a_country_clears_the_data_centre_for_all_valid_time():
    state = activity(ev("ProcessingCorrected", location_country="CN"))
    assert state.original["data_centre_id"] is None
    assert state.facts_on(D("2025-06-01"))["location_country"] == "CN"


def test_a_correction_naming_a_data_centre_clears_the_country_for_all_valid_time():
    state = activity(ev("ProcessingCorrected", data_centre_id="sg-dc2"),
                     data_centre_id=None, location_country="CN")
    assert state.original["location_country"] is None
    assert state.original["data_centre_id"] == "sg-dc2"


def test_of_two_location_corrections_the_later_recorded_one_wins():
    state = activity(ev("ProcessingCorrected", location_country="CN"),
                     ev("ProcessingCorrected", data_centre_id="sg-dc2"))
    assert (state.original["data_centre_id"], state.original["location_country"]) == ("sg-dc2",
                                                                                      None)
    state = activity(ev("ProcessingCorrected", data_centre_id="sg-dc2"),
                     ev("ProcessingCorrected", location_country="CN"))
    assert (state.original["data_centre_id"], state.original["location_country"]) == (None,
                                                                                      "CN")


def test_a_change_naming_both_location_fields_sets_both_as_named():
    state = activity(ev("ProcessingChanged", effective_from="2025-07-01",
                        data_centre_id=None, location_country="CN"))
    facts = state.facts_on(D("2025-07-01"))
    assert (facts["data_centre_id"], facts["location_country"]) == (None, "CN")


def test_a_change_of_country_clears_nothing_in_a_data_centre():
    # Only processing activities are located in "a data centre or a country".
    state = fold("data_centre", "johor-dc1", [
        ev("DataCentreRegistered", name="Johor DC 1", country="MY", operator="Nusantara Data",
           operator_hq_country="MY"),
        ev("DataCentreChanged", effective_from="2025-07-01", country="SG"),
    ])
    assert state.facts_on(D("2025-07-01"))["operator_hq_country"] == "MY"


def test_a_correction_to_the_country_keeps_a_later_move_to_a_data_centre():
    state = activity(
        ev("ProcessingChanged", effective_from="2025-07-01", data_centre_id="sg-dc2"),
        ev("ProcessingCorrected", location_country="HK"),
        data_centre_id=None, location_country="CN",
    )
    assert state.facts_on(D("2025-06-30"))["location_country"] == "HK"
    assert state.facts_on(D("2025-07-01"))["data_centre_id"] == "sg-dc2"
    assert state.facts_on(D("2025-07-01"))["location_country"] is None


# endings, due diligence, positions ---------------------------------------------------------


def test_an_ending_sets_ended_from_to_its_effective_date():
    state = lease(ev("LeaseTerminated", effective_from="2025-08-01", reason="breach"))
    assert state.ended_from == D("2025-08-01")
    assert state.ending == {"effective_from": "2025-08-01", "reason": "breach"}


def test_a_record_that_never_ended_has_no_ended_from():
    assert lease().ended_from is None
    assert lease().ending is None


def test_a_regulation_rescission_ends_the_regulation():
    state = fold("regulation", "us-bis-ai-diffusion", [
        ev("RegulationEnacted", **REGULATION),
        ev("RegulationRescinded", effective_from="2025-05-13", announced_on="2025-05-13"),
    ])
    assert state.ended_from == D("2025-05-13")


def test_due_diligence_counts_from_the_earliest_completed_on_whatever_the_order_recorded():
    state = lease(
        ev("DueDiligenceRecorded", completed_on="2025-06-15", reference="DD-2"),
        ev("DueDiligenceRecorded", completed_on="2025-05-02", reference="DD-1"),
        ev("DueDiligenceRecorded", completed_on="2025-07-01", reference="DD-3"),
    )
    assert state.diligence_from() == D("2025-05-02")


def test_a_lease_without_due_diligence_has_no_diligence_date():
    assert lease().diligence_from() is None


def test_due_diligence_is_not_a_fact_of_the_lease():
    state = lease(ev("DueDiligenceRecorded", completed_on="2025-05-02", reference="DD-1"))
    assert state.facts_on(D("2025-06-01")) == LEASE


def test_positions_are_collected_in_order_when_given():
    state = fold("lease", "l1", [
        ev("LeaseSigned", position=3, **LEASE),
        ev("LeaseAmended", position=17, effective_from="2025-06-01", chip_count=4096),
        ev("LeaseCorrected", position=42, chip_count=1024),
    ])
    assert list(state.positions) == [3, 17, 42]


def test_only_the_events_that_have_positions_add_to_positions():
    state = fold("lease", "l1", [ev("LeaseSigned", **LEASE), ev("LeaseCorrected", chip_count=1)])
    assert list(state.positions) == []
    state = lease(ev("LeaseCorrected", position=42, chip_count=1024))
    assert list(state.positions) == [42]


def test_start_is_the_corrected_start_date_of_a_spanned_record():
    assert lease().start() == D("2025-04-01")
    assert lease(ev("LeaseCorrected", starts_on="2025-03-01")).start() == D("2025-03-01")


def test_records_without_a_span_have_no_start():
    state = fold("firm", "alibaba-sg", [ev("FirmRegistered", **FIRM)])
    assert state.start() is None


# invariants checked before an event is accepted -----------------------------------------------


def problem_of(error: pytest.ExceptionInfo[InvalidRecordError]) -> tuple[tuple[Any, ...], str]:
    [problem] = error.value.problems
    return problem.loc, problem.type


def test_a_lease_that_ends_before_it_starts_is_refused():
    with pytest.raises(InvalidRecordError) as error:
        check_state(lease(ends_on="2025-03-31"))
    assert problem_of(error) == (("ends_on",), "date_order")


def test_a_lease_that_ends_on_the_day_it_starts_is_accepted():
    check_state(lease(ends_on="2025-04-01"))


def test_a_correction_that_puts_the_end_before_the_start_is_refused():
    state = lease()
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("LeaseCorrected", starts_on="2025-10-01"))
    assert problem_of(error) == (("ends_on",), "date_order")


def test_an_amendment_that_puts_the_end_before_the_start_is_refused():
    state = lease()
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("LeaseAmended", effective_from="2025-05-01", ends_on="2025-03-01"))
    assert problem_of(error) == (("ends_on",), "date_order")
    assert "2025-05-01" in error.value.problems[0].msg


def test_a_licence_valid_to_before_valid_from_is_refused():
    state = fold("licence", "bis-lic", [ev("LicenceGranted", **{**LICENCE,
                                                                 "valid_to": "2025-08-07"})])
    with pytest.raises(InvalidRecordError) as error:
        check_state(state)
    assert problem_of(error) == (("valid_to",), "date_order")


def test_a_change_before_the_record_starts_is_refused():
    with pytest.raises(InvalidRecordError) as error:
        check_event(lease(), ev("LeaseAmended", effective_from="2025-03-31", chip_count=1))
    assert problem_of(error) == (("effective_from",), "before_start")


def test_a_change_on_the_first_day_is_accepted():
    check_event(lease(), ev("LeaseAmended", effective_from="2025-04-01", chip_count=1))


def test_a_change_on_the_day_a_record_ends_is_refused():
    state = lease(ev("LeaseTerminated", effective_from="2025-08-01"))
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("LeaseAmended", effective_from="2025-08-01", chip_count=1))
    assert problem_of(error) == (("effective_from",), "after_end")


def test_a_change_after_a_record_ends_is_refused():
    state = lease(ev("LeaseTerminated", effective_from="2025-08-01"))
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("LeaseAmended", effective_from="2025-09-01", chip_count=1))
    assert problem_of(error) == (("effective_from",), "after_end")


def test_a_change_the_day_before_a_record_ends_is_accepted():
    state = lease(ev("LeaseTerminated", effective_from="2025-08-01"))
    check_event(state, ev("LeaseAmended", effective_from="2025-07-31", chip_count=1))


def test_an_amendment_of_a_rescinded_regulation_on_or_after_the_rescission_is_refused():
    state = fold("regulation", "us-bis-ai-diffusion", [
        ev("RegulationEnacted", **REGULATION),
        ev("RegulationRescinded", effective_from="2025-05-13"),
    ])
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("RegulationAmended", effective_from="2025-05-15",
                              rule=REGULATION["rule"]))
    assert problem_of(error) == (("effective_from",), "after_end")


def test_a_second_ending_is_refused():
    state = lease(ev("LeaseTerminated", effective_from="2025-08-01"))
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("LeaseTerminated", effective_from="2025-07-01"))
    assert problem_of(error) == (("effective_from",), "already_ended")


def test_an_ending_before_the_record_starts_is_refused():
    with pytest.raises(InvalidRecordError) as error:
        check_event(lease(), ev("LeaseTerminated", effective_from="2025-03-31"))
    assert problem_of(error) == (("effective_from",), "before_start")


def test_an_ending_before_a_regulation_takes_effect_is_refused():
    state = fold("regulation", "r", [ev("RegulationEnacted", **REGULATION)])
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("RegulationRescinded", effective_from="2025-01-12"))
    assert problem_of(error) == (("effective_from",), "before_start")


def test_an_ending_after_the_span_ends_is_refused():
    with pytest.raises(InvalidRecordError) as error:
        check_event(lease(), ev("LeaseTerminated", effective_from="2025-10-01"))
    assert problem_of(error) == (("effective_from",), "after_end")


def test_an_ending_on_the_last_day_of_the_span_is_accepted():
    check_event(lease(), ev("LeaseTerminated", effective_from="2025-09-30"))


def test_an_ending_is_judged_against_the_end_date_amended_by_then():
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", ends_on="2025-12-31"))
    check_event(state, ev("LeaseTerminated", effective_from="2025-11-01"))
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", ends_on="2025-07-31"))
    with pytest.raises(InvalidRecordError):
        check_event(state, ev("LeaseTerminated", effective_from="2025-08-01"))


def test_an_open_ended_record_can_end_any_day_after_it_starts():
    check_event(lease(ends_on=None), ev("LeaseTerminated", effective_from="2031-01-01"))


def test_a_licence_revoked_after_it_expires_is_refused():
    state = fold("licence", "bis-lic", [ev("LicenceGranted", **LICENCE)])
    with pytest.raises(InvalidRecordError) as error:
        check_event(state, ev("LicenceRevoked", effective_from="2026-08-08"))
    assert problem_of(error) == (("effective_from",), "after_end")


def test_an_activity_with_neither_a_data_centre_nor_a_country_is_refused():
    with pytest.raises(InvalidRecordError) as error:
        check_state(activity(data_centre_id=None))
    assert error.value.problems[0].loc == ("data_centre_id",)


def test_an_activity_with_both_a_data_centre_and_a_country_is_refused():
    with pytest.raises(InvalidRecordError):
        check_state(activity(location_country="CN"))


def test_a_change_that_leaves_an_activity_nowhere_is_refused():
    with pytest.raises(InvalidRecordError) as error:
        check_event(activity(), ev("ProcessingChanged", effective_from="2025-07-01",
                                   data_centre_id=None))
    assert "2025-07-01" in error.value.problems[0].msg


def test_a_move_from_a_data_centre_to_a_country_is_accepted():
    check_event(activity(), ev("ProcessingChanged", effective_from="2025-07-01",
                               location_country="CN"))


def test_check_event_does_not_change_the_state_it_checks():
    state = lease(ev("LeaseAmended", effective_from="2025-06-01", chip_count=4096))
    before = (dict(state.original), list(state.changes), state.version, state.ended_from)
    check_event(state, ev("LeaseCorrected", chip_count=1))
    check_event(state, ev("LeaseAmended", effective_from="2025-07-01", chip_count=1))
    check_event(state, ev("LeaseTerminated", effective_from="2025-07-01"))
    check_event(state, ev("DueDiligenceRecorded", completed_on="2025-05-01", reference="DD"))
    assert (state.original, list(state.changes), state.version, state.ended_from) == before
    assert list(state.diligence) == []
