"""Append bodies and regulation rules, validated from JSON as the API receives them."""

import json
from typing import Any, TypeVar

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from domain import bodies as b
from domain.rules import (
    DataLocalisationRule,
    ExportLicenceRule,
    RemoteComputeAccessRule,
    Rule,
)
from tests.support.data import ACTIVITY, ALIBABA_SG, H20_RULE, H100, LEASE, LICENCE, SHIPMENT

FIRM = ALIBABA_SG
EXPORT_RULE = H20_RULE["rule"]
REMOTE_RULE = {"kind": "remote_compute_access", "lessee_hq_countries": ["CN"],
               "exempt_dc_countries": ["US"],
               "chips": {"any_of": [{"min_tpp": 4800},
                                    {"min_tpp": 1600, "min_performance_density": 5.92}],
                         "origin_countries": ["US"]},
               "min_chips": 64, "purposes": ["training"], "severity": "violation",
               "licence_authority": "US-BIS"}
LOCALISATION_RULE = {"kind": "data_localisation", "data_subject_countries": ["CN"],
                     "sensitive_only": True, "min_subjects": 10000,
                     "accepted_mechanisms": ["security_assessment"]}
H20_REGULATION = H20_RULE


M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], body: dict[str, Any]) -> M:
    return model.model_validate_json(json.dumps(body))


def refused(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The locations of the problems found in a refused body."""
    with pytest.raises(ValidationError) as error:
        parse(model, body)
    return [tuple(e["loc"]) for e in error.value.errors()]


# well-formed bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "body"), [
    (b.ChipModelRegistration, H100),
    (b.FirmRegistration, FIRM),
    (b.LeaseSigning, LEASE),
    (b.ShipmentRecord, SHIPMENT),
    (b.ProcessingStart, ACTIVITY),
    (b.LicenceGrant, LICENCE),
    (b.RegulationEnactment, H20_REGULATION),
])
def test_a_vivid_valid_body_is_accepted(model: type[b.Body], body: dict[str, Any]):
    parse(model, body)


def test_a_create_body_records_its_data_without_the_id():
    data = parse(b.LeaseSigning, LEASE).data()
    assert data == {k: v for k, v in LEASE.items() if k != "id"}


def test_a_create_body_records_absent_optional_fields_as_null():
    data = parse(b.FirmRegistration, {"id": "alibaba", "name": "Alibaba Group",
                                      "hq_country": "CN"}).data()
    assert data == {"name": "Alibaba Group", "hq_country": "CN", "parent_firm_id": None}


def test_a_patch_records_only_the_fields_it_names():
    data = parse(b.LeaseAmendment, {"effective_from": "2025-06-01", "chip_count": 4096}).data()
    assert data == {"effective_from": "2025-06-01", "chip_count": 4096}


def test_a_patch_can_null_an_optional_field_and_records_the_null():
    data = parse(b.LeaseAmendment, {"effective_from": "2025-06-01", "ends_on": None}).data()
    assert data == {"effective_from": "2025-06-01", "ends_on": None}


def test_a_correction_records_its_reason():
    data = parse(b.FirmCorrection, {"hq_country": "CN", "reason": "misfiled"}).data()
    assert data == {"hq_country": "CN", "reason": "misfiled"}


def test_names_are_stripped_of_surrounding_whitespace():
    assert parse(b.FirmRegistration, {**FIRM, "name": "  Alibaba  "}).name == "Alibaba"


def test_a_whole_number_is_accepted_where_a_decimal_belongs():
    assert parse(b.ChipModelRegistration, {**H100, "tpp": 15830}).tpp == 15830.0


# strict JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "body", "field"), [
    (b.ChipModelRegistration, {**H100, "tpp": "15830"}, "tpp"),
    (b.LeaseSigning, {**LEASE, "chip_count": "2048"}, "chip_count"),
    (b.LeaseSigning, {**LEASE, "chip_count": 2048.5}, "chip_count"),
    (b.LeaseSigning, {**LEASE, "chip_count": True}, "chip_count"),
    (b.ShipmentRecord, {**SHIPMENT, "quantity": "800"}, "quantity"),
    (b.ProcessingStart, {**ACTIVITY, "sensitive": "true"}, "sensitive"),
    (b.ProcessingStart, {**ACTIVITY, "sensitive": 1}, "sensitive"),
    (b.ProcessingStart, {**ACTIVITY, "subject_count": "50000"}, "subject_count"),
    (b.FirmRegistration, {**FIRM, "name": 42}, "name"),
])
def test_a_value_of_the_wrong_json_type_is_refused(
    model: type[b.Body], body: dict[str, Any], field: str
):
    assert refused(model, body) == [(field,)]


@pytest.mark.parametrize("value", ["2025/04/01", "01-04-2025", "2025-4-1", "2025-02-30", 20250401])
def test_a_date_that_is_not_an_iso_calendar_date_is_refused(value: Any):
    assert refused(b.LeaseSigning, {**LEASE, "starts_on": value}) == [("starts_on",)]


@pytest.mark.parametrize(("model", "body"), [
    (b.ChipModelRegistration, {**H100, "colour": "green"}),
    (b.LeaseSigning, {**LEASE, "chipcount": 2048}),
    (b.LeaseAmendment, {"effective_from": "2025-06-01", "chip_count": 1, "firm_id": "x"}),
    (b.LeaseCorrection, {"chip_count": 1, "id": "other-lease"}),
    (b.ProcessingChange, {"effective_from": "2025-06-01", "sensitive": False, "bogus": 1}),
    (b.ProcessingCorrection, {"sensitive": False, "effective_from": "2025-06-01"}),
    (b.LeaseTermination, {"effective_from": "2025-06-01", "note": "x"}),
    (b.DueDiligence, {"completed_on": "2025-06-01", "reference": "DD-1", "by": "x"}),
])
def test_an_unknown_field_is_refused(model: type[b.Body], body: dict[str, Any]):
    assert refused(model, body)


def test_a_missing_required_field_is_refused_by_name():
    body = {k: v for k, v in LEASE.items() if k != "chip_model"}
    assert refused(b.LeaseSigning, body) == [("chip_model",)]


@pytest.mark.parametrize("record_id", ["", "Nvidia-H100", "-h100", "h100 sxm", "a" * 65, "h/100"])
def test_an_id_outside_the_id_pattern_is_refused(record_id: str):
    assert refused(b.ChipModelRegistration, {**H100, "id": record_id}) == [("id",)]


def test_an_id_of_64_characters_is_accepted():
    parse(b.ChipModelRegistration, {**H100, "id": "a" * 64})


@pytest.mark.parametrize("authority", ["us-bis", "USBIS", "US_BIS", "U-BIS", "US-"])
def test_an_authority_outside_the_pattern_is_refused(authority: str):
    assert refused(b.LicenceGrant, {**LICENCE, "authority": authority}) == [("authority",)]


@pytest.mark.parametrize("name", ["", "   ", "x" * 201])
def test_an_empty_or_overlong_name_is_refused(name: str):
    assert refused(b.FirmRegistration, {**FIRM, "name": name}) == [("name",)]


# countries -------------------------------------------------------------------------------------


@pytest.mark.parametrize("country", ["CN", "SG", "MY", "US", "HK", "MO", "GB", "TW"])
def test_an_iso_alpha_2_country_is_accepted(country: str):
    parse(b.FirmRegistration, {**FIRM, "hq_country": country})


@pytest.mark.parametrize("country", ["cn", "Cn", "CHN", "UK", "XX", "EU", "C", "", "156"])
def test_a_country_that_is_not_iso_alpha_2_is_refused(country: str):
    assert refused(b.FirmRegistration, {**FIRM, "hq_country": country}) == [("hq_country",)]


def test_a_bad_country_in_a_list_is_refused_by_its_index():
    body = {**ACTIVITY, "data_subject_countries": ["CN", "ZZ"]}
    assert refused(b.ProcessingStart, body) == [("data_subject_countries", 1)]


def test_a_bad_country_in_a_patch_is_refused():
    assert refused(b.DataCentreChange, {"effective_from": "2025-06-01", "country": "Malaysia"})


# counts and lists ------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "body", "field"), [
    (b.LeaseSigning, {**LEASE, "chip_count": 0}, "chip_count"),
    (b.LeaseSigning, {**LEASE, "chip_count": -8}, "chip_count"),
    (b.ShipmentRecord, {**SHIPMENT, "quantity": 0}, "quantity"),
    (b.ProcessingStart, {**ACTIVITY, "subject_count": 0}, "subject_count"),
    (b.LicenceGrant, {**LICENCE, "quantity": -1}, "quantity"),
    (b.ChipModelRegistration, {**H100, "tpp": 0}, "tpp"),
    (b.ChipModelRegistration, {**H100, "performance_density": -19.4}, "performance_density"),
    (b.LeaseAmendment, {"effective_from": "2025-06-01", "chip_count": 0}, "chip_count"),
])
def test_a_count_or_measure_that_is_not_positive_is_refused(
    model: type[b.Body], body: dict[str, Any], field: str
):
    assert refused(model, body) == [(field,)]


@pytest.mark.parametrize(("model", "body", "field"), [
    (b.LeaseSigning, {**LEASE, "purposes": []}, "purposes"),
    (b.LicenceGrant, {**LICENCE, "chip_models": []}, "chip_models"),
    (b.LicenceGrant, {**LICENCE, "destination_countries": []}, "destination_countries"),
    (b.ProcessingStart, {**ACTIVITY, "data_subject_countries": []}, "data_subject_countries"),
    (b.LeaseAmendment, {"effective_from": "2025-06-01", "purposes": []}, "purposes"),
])
def test_an_empty_list_where_one_item_is_needed_is_refused(
    model: type[b.Body], body: dict[str, Any], field: str
):
    assert refused(model, body) == [(field,)]


def test_an_unknown_purpose_is_refused():
    assert refused(b.LeaseSigning, {**LEASE, "purposes": ["training", "mining"]}) == [
        ("purposes", 1)
    ]


def test_an_unknown_transfer_mechanism_is_refused():
    assert refused(b.ProcessingStart, {**ACTIVITY, "transfer_mechanism": "consent"})


# patches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("model", "body"), [
    (b.LeaseAmendment, {"effective_from": "2025-06-01"}),
    (b.FirmChange, {"effective_from": "2025-06-01"}),
    (b.ProcessingChange, {"effective_from": "2025-06-01"}),
    (b.LeaseCorrection, {}),
    (b.LeaseCorrection, {"reason": "nothing really"}),
    (b.ChipModelCorrection, {"reason": "x"}),
    (b.ProcessingCorrection, {"reason": "x"}),
])
def test_a_patch_that_names_no_field_is_refused(model: type[b.Body], body: dict[str, Any]):
    with pytest.raises(ValidationError, match="name at least one field"):
        parse(model, body)


@pytest.mark.parametrize(("model", "body", "field"), [
    (b.LeaseCorrection, {"chip_count": None}, "chip_count"),
    (b.LeaseAmendment, {"effective_from": "2025-06-01", "purposes": None}, "purposes"),
    (b.FirmChange, {"effective_from": "2025-06-01", "name": None}, "name"),
    (b.FirmCorrection, {"hq_country": None}, "hq_country"),
    (b.ChipModelCorrection, {"tpp": None}, "tpp"),
    (b.ShipmentCorrection, {"shipped_on": None}, "shipped_on"),
    (b.ProcessingCorrection, {"firm_id": None}, "firm_id"),
    (b.ProcessingChange, {"effective_from": "2025-06-01", "sensitive": None}, "sensitive"),
])
def test_a_patch_cannot_null_a_required_field(model: type[b.Body], body: dict[str, Any],
                                              field: str):
    with pytest.raises(ValidationError, match=f"required fields cannot be null: {field}"):
        parse(model, body)


@pytest.mark.parametrize(("model", "body"), [
    (b.FirmChange, {"effective_from": "2025-06-01", "parent_firm_id": None}),
    (b.ChipModelCorrection, {"memory_bandwidth_gbps": None}),
    (b.ShipmentCorrection, {"licence_id": None}),
    (b.ProcessingChange, {"effective_from": "2025-06-01", "transfer_mechanism": None}),
])
def test_a_patch_can_null_an_optional_field(model: type[b.Body], body: dict[str, Any]):
    parse(model, body)


def test_a_change_needs_an_effective_date():
    assert refused(b.FirmChange, {"name": "Alibaba"}) == [("effective_from",)]


def test_an_ending_needs_an_effective_date():
    assert refused(b.LeaseTermination, {"reason": "breach"}) == [("effective_from",)]


# processing activities: exactly one location --------------------------------------------------


def test_an_activity_in_a_country_rather_than_a_data_centre_is_accepted():
    body = {**ACTIVITY, "data_centre_id": None, "location_country": "CN"}
    assert parse(b.ProcessingStart, body).location_country == "CN"


def test_an_activity_in_both_a_data_centre_and_a_country_is_refused():
    with pytest.raises(ValidationError, match="exactly one of data_centre_id"):
        parse(b.ProcessingStart, {**ACTIVITY, "location_country": "SG"})


def test_an_activity_in_neither_a_data_centre_nor_a_country_is_refused():
    body = {k: v for k, v in ACTIVITY.items() if k != "data_centre_id"}
    with pytest.raises(ValidationError, match="exactly one of data_centre_id"):
        parse(b.ProcessingStart, body)


# rules -----------------------------------------------------------------------------------------

RULE = TypeAdapter(Rule)


def parse_rule(rule: dict[str, Any]) -> Any:
    return RULE.validate_json(json.dumps(rule))


def rule_refused(rule: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as error:
        parse_rule(rule)
    return error.value


@pytest.mark.parametrize(("rule", "model"), [
    (EXPORT_RULE, ExportLicenceRule),
    (REMOTE_RULE, RemoteComputeAccessRule),
    (LOCALISATION_RULE, DataLocalisationRule),
])
def test_each_of_the_three_rule_kinds_parses_to_its_model(rule: dict[str, Any],
                                                          model: type[BaseModel]):
    assert isinstance(parse_rule(rule), model)


def test_a_rule_parses_inside_a_regulation_and_records_as_json():
    regulation = parse(b.RegulationEnactment, {**H20_REGULATION, "rule": REMOTE_RULE})
    data = regulation.data()
    assert data["rule"]["kind"] == "remote_compute_access"
    assert data["rule"]["chips"]["any_of"][1] == {"min_tpp": 1600.0,
                                                  "min_performance_density": 5.92}
    assert parse_rule(data["rule"]) == regulation.rule


def test_a_rule_parses_inside_a_regulation_amendment():
    body = {"effective_from": "2025-07-01", "rule": LOCALISATION_RULE}
    assert isinstance(parse(b.RegulationAmendment, body).rule, DataLocalisationRule)


def test_rule_defaults_are_those_of_the_domain():
    rule = parse_rule({"kind": "remote_compute_access", "lessee_hq_countries": ["CN"],
                       "licence_authority": "US-BIS"})
    assert (rule.min_chips, rule.severity, rule.exempt_dc_countries, rule.purposes) == (
        1, "violation", [], None)
    assert rule.chips.models is None
    assert rule.chips.any_of is None
    localisation = parse_rule({"kind": "data_localisation", "data_subject_countries": ["CN"]})
    assert localisation.accepted_mechanisms == []
    assert localisation.sensitive_only is False


@pytest.mark.parametrize("kind", ["export_control", "EXPORT_LICENCE", "", None])
def test_an_unknown_rule_kind_is_refused(kind: Any):
    rule_refused({**EXPORT_RULE, "kind": kind})


def test_a_rule_without_a_kind_is_refused():
    rule_refused({k: v for k, v in EXPORT_RULE.items() if k != "kind"})


def test_an_unknown_rule_kind_inside_a_regulation_is_refused():
    body = {**H20_REGULATION, "rule": {**EXPORT_RULE, "kind": "chip_tax"}}
    assert refused(b.RegulationEnactment, body)[0][0] == "rule"


@pytest.mark.parametrize("rule", [
    {**EXPORT_RULE, "to_country": ["CN"]},
    {**REMOTE_RULE, "max_chips": 10},
    {**LOCALISATION_RULE, "mechanisms": []},
    {**EXPORT_RULE, "chips": {"models": ["nvidia-h20"], "vendor": "NVIDIA"}},
    {**EXPORT_RULE, "chips": {"any_of": [{"min_tpp": 4800, "max_tpp": 9000}]}},
    # a parameter of another kind is unknown to this one
    {**LOCALISATION_RULE, "licence_authority": "US-BIS"},
])
def test_an_unknown_rule_parameter_is_refused(rule: dict[str, Any]):
    rule_refused(rule)


def test_a_chip_selector_clause_must_name_a_bound():
    error = rule_refused({**EXPORT_RULE, "chips": {"any_of": [{"min_tpp": 4800}, {}]}})
    assert "min_tpp or min_performance_density" in str(error)


def test_a_chip_selector_clause_may_name_a_single_bound():
    parse_rule({**EXPORT_RULE, "chips": {"any_of": [{"min_performance_density": 5.92}]}})


def test_a_chip_selector_bound_must_be_positive():
    rule_refused({**EXPORT_RULE, "chips": {"any_of": [{"min_tpp": 0}]}})


def test_remote_compute_access_with_severity_violation_needs_a_licence_authority():
    rule = {k: v for k, v in REMOTE_RULE.items() if k != "licence_authority"}
    error = rule_refused(rule)
    assert "needs a licence_authority" in str(error)


def test_remote_compute_access_defaults_to_severity_violation_so_needs_an_authority():
    rule = {k: v for k, v in REMOTE_RULE.items() if k not in ("licence_authority", "severity")}
    rule_refused(rule)


def test_remote_compute_access_with_severity_attention_needs_no_licence_authority():
    rule = {k: v for k, v in REMOTE_RULE.items() if k != "licence_authority"}
    assert parse_rule({**rule, "severity": "attention"}).licence_authority is None


def test_an_unknown_severity_is_refused():
    rule_refused({**REMOTE_RULE, "severity": "warning"})


@pytest.mark.parametrize("rule", [
    {**REMOTE_RULE, "lessee_hq_countries": []},
    {**LOCALISATION_RULE, "data_subject_countries": []},
    {**REMOTE_RULE, "min_chips": 0},
    {**LOCALISATION_RULE, "min_subjects": 0},
    {**LOCALISATION_RULE, "accepted_mechanisms": ["consent"]},
    {**REMOTE_RULE, "purposes": ["mining"]},
    {**EXPORT_RULE, "to_countries": ["China"]},
    {**EXPORT_RULE, "chips": {"origin_countries": ["us"]}},
    {**EXPORT_RULE, "licence_authority": "bis"},
    {**EXPORT_RULE, "chips": {"models": ["NVIDIA H20"]}},
])
def test_a_rule_parameter_out_of_its_domain_is_refused(rule: dict[str, Any]):
    rule_refused(rule)


def test_an_export_licence_rule_needs_a_licence_authority():
    rule_refused({k: v for k, v in EXPORT_RULE.items() if k != "licence_authority"})


@pytest.mark.parametrize("rule", [
    {**EXPORT_RULE, "chips": {"any_of": [{"min_tpp": "4800"}]}},
    {**REMOTE_RULE, "min_chips": "64"},
    {**LOCALISATION_RULE, "sensitive_only": "true"},
    {**LOCALISATION_RULE, "min_subjects": "10000"},
])
def test_a_rule_parameter_of_the_wrong_json_type_is_refused(rule: dict[str, Any]):
    # A regulation body is strict; so is the rule it carries.
    rule_refused(rule)
    assert refused(b.RegulationEnactment, {**H20_REGULATION, "rule": rule})
