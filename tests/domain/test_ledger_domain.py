"""The Ledger's staging and committing of appends, on the in-memory event store."""

import json
from datetime import date
from typing import Any

import pytest

from domain.application import Append, Ledger
from domain.errors import (
    InvalidRecordError,
    RecordConflictError,
    RecordNotFoundError,
    VersionMismatchError,
)
from domain.ids import record_uuid
from domain.kinds import KINDS, Role
from tests.support.data import ALIBABA, ALIBABA_SG, DC_JOHOR, H20, H100, LEASE, LICENCE


def append(kind: str, body: dict[str, Any], role: Role = Role.CREATE,
           record_id: str | None = None, expected_version: int | None = None) -> Append:
    """An append as the API makes it: the body validated from JSON."""
    model = KINDS[kind].bodies[role]
    return Append(kind, role, model.model_validate_json(json.dumps(body)), record_id,
                  expected_version)


def create(kind: str, body: dict[str, Any]) -> Append:
    return append(kind, body)


@pytest.fixture
def ledger() -> Ledger:
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def record(ledger: Ledger, *appends: Append) -> None:
    ledger.commit(ledger.stage(appends))


@pytest.fixture
def world(ledger: Ledger) -> Ledger:
    """Two chips, a firm with a parent, a data centre: what a lease or a licence names."""
    record(ledger, create("chip_model", H100), create("chip_model", H20),
           create("firm", ALIBABA), create("firm", ALIBABA_SG),
           create("data_centre", DC_JOHOR))
    return ledger


def invalid(ledger: Ledger, *appends: Append) -> list[tuple[tuple[Any, ...], str]]:
    """The (loc, type) of each problem when staging is refused."""
    with pytest.raises(InvalidRecordError) as error:
        ledger.stage(appends)
    return [(p.loc, p.type) for p in error.value.problems]


# creating --------------------------------------------------------------------------------------


def test_a_staged_and_committed_create_can_be_read_back(ledger: Ledger):
    staged = ledger.stage([create("chip_model", H100)])
    [outcome] = staged.outcomes
    assert (outcome.kind, outcome.record_id, outcome.version) == ("chip_model", "nvidia-h100", 1)
    assert (outcome.created, outcome.appended) == (True, True)
    assert outcome.originator_id == record_uuid("chip_model", "nvidia-h100")
    recordings = ledger.commit(staged)
    assert len(recordings) == 1
    chip = ledger.get_record("chip_model", "nvidia-h100")
    assert chip.state.original == {k: v for k, v in H100.items() if k != "id"}
    assert chip.version == 1


def test_staging_alone_writes_nothing(ledger: Ledger):
    ledger.stage([create("chip_model", H100)])
    assert not ledger.has_record("chip_model", "nvidia-h100")
    with pytest.raises(RecordNotFoundError):
        ledger.get_record("chip_model", "nvidia-h100")


def test_a_batch_commits_every_record_it_staged(world: Ledger):
    for kind, record_id in [("chip_model", "nvidia-h100"), ("chip_model", "nvidia-h20"),
                            ("firm", "alibaba"), ("firm", "alibaba-sg"),
                            ("data_centre", "johor-dc1")]:
        assert world.has_record(kind, record_id)


def test_ids_are_unique_per_kind_not_across_kinds(ledger: Ledger):
    record(ledger, create("firm", {**ALIBABA, "id": "same"}),
           create("data_centre", {**DC_JOHOR, "id": "same"}))
    assert ledger.get_record("firm", "same").state.kind == "firm"
    assert ledger.get_record("data_centre", "same").state.kind == "data_centre"


def test_a_record_read_back_from_the_store_has_the_state_it_was_staged_with(world: Ledger):
    staged = world.stage([
        create("lease", LEASE),
        append("lease", {"effective_from": "2025-06-01", "chip_count": 4096}, Role.CHANGE,
               "lease-ali-johor"),
        append("lease", {"chip_count": 1024, "reason": "typo"}, Role.CORRECT,
               "lease-ali-johor"),
        append("lease", {"completed_on": "2025-05-01", "reference": "DD-1"}, Role.DILIGENCE,
               "lease-ali-johor"),
        append("lease", {"effective_from": "2025-08-01"}, Role.END, "lease-ali-johor"),
    ])
    in_memory = staged.records[record_uuid("lease", "lease-ali-johor")].state
    world.commit(staged)
    stored = world.get_record("lease", "lease-ali-johor")
    assert stored.version == 5
    assert stored.state == in_memory


# references ------------------------------------------------------------------------------------


def test_a_create_naming_an_unknown_record_is_refused_naming_the_field(world: Ledger):
    assert invalid(world, create("lease", {**LEASE, "data_centre_id": "penang-dc9"})) == [
        (("data_centre_id",), "unknown_reference")
    ]
    assert not world.has_record("lease", "lease-ali-johor")


def test_every_unknown_reference_is_named(world: Ledger):
    body = {**LEASE, "firm_id": "ghost-firm", "chip_model": "ghost-chip"}
    assert sorted(invalid(world, create("lease", body))) == [
        (("chip_model",), "unknown_reference"), (("firm_id",), "unknown_reference")
    ]


def test_an_unknown_reference_in_a_list_is_named_by_its_index(world: Ledger):
    body = {**LICENCE, "chip_models": ["nvidia-h20", "huawei-ascend-910c", "nvidia-h100"]}
    assert invalid(world, create("licence", body)) == [
        (("chip_models", 1), "unknown_reference")
    ]


def test_the_message_names_the_kind_and_id_that_is_missing(world: Ledger):
    with pytest.raises(InvalidRecordError) as error:
        world.stage([create("lease", {**LEASE, "data_centre_id": "penang-dc9"})])
    assert error.value.problems[0].msg == "no data centre with id 'penang-dc9'"


def test_a_reference_must_name_a_record_of_the_referenced_kind(world: Ledger):
    # `johor-dc1` is a data centre, not a firm.
    assert invalid(world, create("lease", {**LEASE, "firm_id": "johor-dc1"})) == [
        (("firm_id",), "unknown_reference")
    ]


def test_a_change_naming_an_unknown_record_is_refused(world: Ledger):
    record(world, create("lease", LEASE))
    amendment = append("lease", {"effective_from": "2025-06-01", "chip_model": "nvidia-b200"},
                       Role.CHANGE, "lease-ali-johor")
    assert invalid(world, amendment) == [(("chip_model",), "unknown_reference")]


def test_a_correction_naming_an_unknown_record_is_refused(world: Ledger):
    correction = append("firm", {"parent_firm_id": "tencent"}, Role.CORRECT, "alibaba-sg")
    assert invalid(world, correction) == [(("parent_firm_id",), "unknown_reference")]


def test_an_optional_reference_left_out_is_not_checked(world: Ledger):
    record(world, create("firm", {"id": "deepseek", "name": "DeepSeek", "hq_country": "CN"}))
    assert world.has_record("firm", "deepseek")


def test_a_record_created_earlier_in_the_same_batch_can_be_referenced(ledger: Ledger):
    staged = ledger.stage([
        create("chip_model", H100), create("firm", ALIBABA), create("firm", ALIBABA_SG),
        create("data_centre", DC_JOHOR), create("lease", LEASE),
    ])
    assert [o.record_id for o in staged.outcomes] == [
        "nvidia-h100", "alibaba", "alibaba-sg", "johor-dc1", "lease-ali-johor"
    ]
    ledger.commit(staged)
    assert ledger.has_record("lease", "lease-ali-johor")


def test_a_record_created_later_in_the_same_batch_cannot_be_referenced(ledger: Ledger):
    refused = invalid(ledger, create("firm", ALIBABA_SG), create("firm", ALIBABA))
    assert refused == [((1, "parent_firm_id"), "unknown_reference")]


def test_a_firm_created_naming_itself_as_parent_is_refused(ledger: Ledger):
    assert invalid(ledger, create("firm", {**ALIBABA, "parent_firm_id": "alibaba"})) == [
        (("parent_firm_id",), "unknown_reference")
    ]


# batches ---------------------------------------------------------------------------------------


def test_a_batch_error_carries_the_line_number_first(world: Ledger):
    refused = invalid(world, create("firm", {"id": "deepseek", "name": "DeepSeek",
                                             "hq_country": "CN"}),
                      create("chip_model", {**H20, "id": "huawei-ascend-910c",
                                            "origin_country": "CN"}),
                      create("lease", {**LEASE, "chip_model": "nvidia-b200"}))
    assert refused == [((3, "chip_model"), "unknown_reference")]


def test_a_batch_error_in_a_list_carries_the_line_then_the_field_then_the_index(world: Ledger):
    body = {**LICENCE, "chip_models": ["nvidia-h20", "ghost"]}
    assert invalid(world, create("chip_model", {**H20, "id": "h20e"}),
                   create("licence", body)) == [((2, "chip_models", 1), "unknown_reference")]


def test_a_batch_error_from_a_record_rule_carries_the_line_number(world: Ledger):
    record(world, create("lease", LEASE))
    refused = invalid(world,
                      append("lease", {"completed_on": "2025-05-01", "reference": "DD-1"},
                             Role.DILIGENCE, "lease-ali-johor"),
                      append("lease", {"effective_from": "2025-03-01"}, Role.END,
                             "lease-ali-johor"))
    assert refused == [((2, "effective_from"), "before_start")]


def test_a_single_append_error_carries_no_line_number(world: Ledger):
    assert invalid(world, create("lease", {**LEASE, "firm_id": "ghost"})) == [
        (("firm_id",), "unknown_reference")
    ]


def test_a_refused_batch_leaves_the_store_as_it_was(world: Ledger):
    with pytest.raises(InvalidRecordError):
        world.stage([create("firm", {"id": "deepseek", "name": "DeepSeek", "hq_country": "CN"}),
                     create("lease", {**LEASE, "firm_id": "ghost"})])
    assert not world.has_record("firm", "deepseek")
    assert world.get_record("firm", "alibaba").version == 1


def test_an_event_on_a_record_created_in_the_same_batch_is_staged_on_it(world: Ledger):
    staged = world.stage([
        create("lease", LEASE),
        append("lease", {"effective_from": "2025-06-01", "chip_count": 4096}, Role.CHANGE,
               "lease-ali-johor"),
    ])
    assert [(o.created, o.version) for o in staged.outcomes] == [(True, 1), (False, 2)]
    world.commit(staged)
    assert world.get_record("lease", "lease-ali-johor").version == 2


# repeated creates ------------------------------------------------------------------------------


def test_a_repeated_identical_create_appends_nothing(world: Ledger):
    staged = world.stage([create("firm", ALIBABA_SG)])
    [outcome] = staged.outcomes
    assert (outcome.created, outcome.appended, outcome.version) == (True, False, 1)
    assert world.commit(staged) == []
    assert world.get_record("firm", "alibaba-sg").version == 1


def test_a_repeated_create_is_compared_with_the_record_as_first_recorded(world: Ledger):
    record(world, append("firm", {"name": "Alibaba Cloud SG", "reason": "trading name"},
                         Role.CORRECT, "alibaba-sg"))
    [outcome] = world.stage([create("firm", ALIBABA_SG)]).outcomes
    assert outcome.appended is False
    with pytest.raises(RecordConflictError):
        world.stage([create("firm", {**ALIBABA_SG, "name": "Alibaba Cloud SG"})])


def test_an_optional_field_named_as_null_is_the_same_create_as_leaving_it_out(world: Ledger):
    [outcome] = world.stage([create("firm", {**ALIBABA, "parent_firm_id": None})]).outcomes
    assert outcome.appended is False


def test_a_whole_number_and_its_decimal_form_are_the_same_create(world: Ledger):
    [outcome] = world.stage([create("chip_model", {**H100, "tpp": 15830.0})]).outcomes
    assert outcome.appended is False


def test_a_repeated_create_within_one_batch_appends_once(ledger: Ledger):
    staged = ledger.stage([create("chip_model", H100), create("chip_model", H100)])
    assert [o.appended for o in staged.outcomes] == [True, False]
    assert len(ledger.commit(staged)) == 1


def test_a_create_with_the_same_id_and_different_content_is_a_conflict(world: Ledger):
    with pytest.raises(RecordConflictError) as error:
        world.stage([create("chip_model", {**H100, "tpp": 15000})])
    assert (error.value.kind, error.value.record_id) == ("chip_model", "nvidia-h100")
    assert world.get_record("chip_model", "nvidia-h100").state.original["tpp"] == 15830


def test_leaving_out_an_optional_field_that_was_given_is_a_conflict(world: Ledger):
    body = {k: v for k, v in H100.items() if k != "memory_bandwidth_gbps"}
    with pytest.raises(RecordConflictError):
        world.stage([create("chip_model", body)])


def test_a_create_conflicting_within_one_batch_is_refused(ledger: Ledger):
    with pytest.raises(RecordConflictError):
        ledger.stage([create("firm", ALIBABA), create("firm", {**ALIBABA, "hq_country": "HK"})])


# events on existing records --------------------------------------------------------------------


def test_an_event_on_an_unknown_record_is_refused(world: Ledger):
    with pytest.raises(RecordNotFoundError) as error:
        world.stage([append("lease", {"effective_from": "2025-06-01"}, Role.END, "no-lease")])
    assert (error.value.kind, error.value.record_id) == ("lease", "no-lease")


def test_an_event_with_the_current_version_as_precondition_is_staged(world: Ledger):
    staged = world.stage([append("firm", {"effective_from": "2025-06-01", "hq_country": "HK"},
                                 Role.CHANGE, "alibaba-sg", expected_version=1)])
    assert staged.outcomes[0].version == 2


def test_an_event_with_a_stale_version_as_precondition_is_refused(world: Ledger):
    record(world, append("firm", {"effective_from": "2025-06-01", "hq_country": "HK"},
                         Role.CHANGE, "alibaba-sg"))
    with pytest.raises(VersionMismatchError) as error:
        world.stage([append("firm", {"name": "Alibaba SG", "reason": "x"}, Role.CORRECT,
                            "alibaba-sg", expected_version=1)])
    assert (error.value.expected, error.value.actual) == (1, 2)
    assert world.get_record("firm", "alibaba-sg").version == 2


def test_a_precondition_counts_events_staged_earlier_in_the_batch(world: Ledger):
    change = append("firm", {"effective_from": "2025-06-01", "hq_country": "HK"}, Role.CHANGE,
                    "alibaba-sg", expected_version=1)
    with pytest.raises(VersionMismatchError):
        world.stage([change, change])


def test_a_record_rule_refusal_names_the_field(world: Ledger):
    record(world, create("lease", LEASE))
    termination = append("lease", {"effective_from": "2025-10-01"}, Role.END, "lease-ali-johor")
    assert invalid(world, termination) == [(("effective_from",), "after_end")]


def test_a_create_that_breaks_a_record_rule_is_refused(world: Ledger):
    assert invalid(world, create("lease", {**LEASE, "ends_on": "2025-03-01"})) == [
        (("ends_on",), "date_order")
    ]


# firm parents ----------------------------------------------------------------------------------


def test_a_firm_cannot_be_its_own_parent(world: Ledger):
    change = append("firm", {"effective_from": "2025-06-01", "parent_firm_id": "alibaba"},
                    Role.CHANGE, "alibaba")
    assert invalid(world, change) == [(("parent_firm_id",), "parent_cycle")]


def test_a_firm_cannot_take_a_parent_it_owns(world: Ledger):
    change = append("firm", {"effective_from": "2025-06-01", "parent_firm_id": "alibaba-sg"},
                    Role.CHANGE, "alibaba")
    assert invalid(world, change) == [(("parent_firm_id",), "parent_cycle")]


def test_a_firm_cannot_take_a_parent_it_owns_indirectly(world: Ledger):
    record(world, create("firm", {"id": "alibaba-sg-labs", "name": "Alibaba SG Labs",
                                  "hq_country": "SG", "parent_firm_id": "alibaba-sg"}))
    correction = append("firm", {"parent_firm_id": "alibaba-sg-labs"}, Role.CORRECT, "alibaba")
    assert invalid(world, correction) == [(("parent_firm_id",), "parent_cycle")]


def test_a_cycle_through_a_parent_taken_on_a_later_date_is_refused(world: Ledger):
    # alibaba-sg has no parent at first, and takes alibaba as parent only from 2026.
    record(world, create("firm", {"id": "ant", "name": "Ant Group", "hq_country": "CN"}),
           append("firm", {"effective_from": "2026-01-01", "parent_firm_id": "ant"},
                  Role.CHANGE, "alibaba-sg"))
    change = append("firm", {"effective_from": "2025-01-01", "parent_firm_id": "alibaba-sg"},
                    Role.CHANGE, "ant")
    assert invalid(world, change) == [(("parent_firm_id",), "parent_cycle")]


def test_a_cycle_made_within_one_batch_is_refused_on_its_line(ledger: Ledger):
    refused = invalid(ledger, create("firm", ALIBABA), create("firm", ALIBABA_SG),
                      append("firm", {"parent_firm_id": "alibaba-sg"}, Role.CORRECT, "alibaba"))
    assert refused == [((3, "parent_firm_id"), "parent_cycle")]


def test_a_parent_that_does_not_close_a_cycle_is_accepted(world: Ledger):
    record(world, create("firm", {"id": "ant", "name": "Ant Group", "hq_country": "CN"}),
           append("firm", {"effective_from": "2025-06-01", "parent_firm_id": "ant"},
                  Role.CHANGE, "alibaba-sg"))
    state = world.get_record("firm", "alibaba-sg").state
    assert state.facts_on(date(2025, 5, 31))["parent_firm_id"] == "alibaba"
    assert state.facts_on(date(2025, 6, 1))["parent_firm_id"] == "ant"
