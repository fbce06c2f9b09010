"""The pure evaluator: every row of domain.md's rule table and its edges, on worlds built by hand.

Each test builds a World from logged events (no database), asks `findings_for`, `posture_on`,
`residency_on` or `timeline`, and states the behaviour it pins in its name.
"""

from datetime import date
from itertools import pairwise
from typing import Any

import pytest

from domain.evaluator import (
    Finding,
    Processing,
    findings_for,
    posture_on,
    residency_on,
    timeline,
)
from domain.kinds import KINDS, Role
from domain.records import LoggedEvent
from domain.types import Status
from domain.world import SubjectRef, World

D = date.fromisoformat
C, A, V = Status.COMPLIANT, Status.ATTENTION, Status.VIOLATION


# rule builders ----------------------------------------------------------------------------------


def export_rule(**params: Any) -> dict[str, Any]:
    return {"kind": "export_licence", "licence_authority": "US-BIS", **params}


def remote_rule(**params: Any) -> dict[str, Any]:
    return {"kind": "remote_compute_access", "lessee_hq_countries": ["CN"],
            "licence_authority": "US-BIS", **params}


def red_flag_rule(**params: Any) -> dict[str, Any]:
    return {"kind": "remote_compute_access", "lessee_hq_countries": ["CN"],
            "severity": "attention", **params}


def local_rule(**params: Any) -> dict[str, Any]:
    return {"kind": "data_localisation", "data_subject_countries": ["CN"], **params}


H20_RULE = export_rule(chips={"models": ["nvidia-h20"]}, to_countries=["CN", "HK", "MO"])


# the world builder ------------------------------------------------------------------------------


class Book:
    """Builds a World event by event, validating every body as the API would, positions 1, 2, ..."""

    def __init__(self) -> None:
        self.world = World()
        self.position = 0

    def _log(self, kind: str, record_id: str, role: Role, body: dict[str, Any]) -> int:
        spec = KINDS[kind]
        data = spec.bodies[role].model_validate(body, strict=False).data()
        self.position += 1
        self.world.apply(kind, record_id, LoggedEvent(spec.events[role], data, self.position))
        return self.position

    def _create(self, kind: str, record_id: str, **body: Any) -> int:
        body = {k: v for k, v in body.items() if v is not None}
        return self._log(kind, record_id, Role.CREATE, {"id": record_id, **body})

    # reference records

    def chip(self, chip_id: str, tpp: float, density: float, origin: str = "US") -> int:
        return self._create("chip_model", chip_id, vendor="Vendor", origin_country=origin,
                            tpp=tpp, performance_density=density)

    def firm(self, firm_id: str, hq: str, parent: str | None = None) -> int:
        return self._create("firm", firm_id, name=firm_id.title(), hq_country=hq,
                            parent_firm_id=parent)

    def change_firm(self, firm_id: str, on: str, **fields: Any) -> int:
        return self._log("firm", firm_id, Role.CHANGE, {"effective_from": on, **fields})

    def correct_firm(self, firm_id: str, **fields: Any) -> int:
        return self._log("firm", firm_id, Role.CORRECT, fields)

    def data_centre(self, dc_id: str, country: str) -> int:
        return self._create("data_centre", dc_id, name=dc_id, country=country,
                            operator="Operator", operator_hq_country=country)

    def change_data_centre(self, dc_id: str, on: str, **fields: Any) -> int:
        return self._log("data_centre", dc_id, Role.CHANGE, {"effective_from": on, **fields})

    # regulations and licences

    def regulation(self, reg_id: str, rule: dict[str, Any], effective_from: str,
                   compliance_from: str | None = None, authority: str = "US-BIS") -> int:
        return self._create("regulation", reg_id, authority=authority, title=f"Rule {reg_id}",
                            citation=f"cite {reg_id}", effective_from=effective_from,
                            compliance_from=compliance_from, rule=rule)

    def amend_regulation(self, reg_id: str, on: str, rule: dict[str, Any]) -> int:
        return self._log("regulation", reg_id, Role.CHANGE, {"effective_from": on, "rule": rule})

    def rescind(self, reg_id: str, on: str) -> int:
        return self._log("regulation", reg_id, Role.END, {"effective_from": on})

    def licence(self, licence_id: str, holder: str, chips: list[str], countries: list[str],
                valid_from: str, valid_to: str | None = None, authority: str = "US-BIS") -> int:
        return self._create("licence", licence_id, authority=authority, holder_firm_id=holder,
                            chip_models=chips, destination_countries=countries,
                            valid_from=valid_from, valid_to=valid_to)

    def revoke(self, licence_id: str, on: str) -> int:
        return self._log("licence", licence_id, Role.END, {"effective_from": on})

    # subjects

    def lease(self, lease_id: str, firm: str = "alibaba-sg", dc: str = "johor-dc1",
              chip: str = "nvidia-h100", count: int = 2048, starts_on: str = "2025-04-01",
              ends_on: str | None = None, purposes: tuple[str, ...] = ("training",)) -> int:
        return self._create("lease", lease_id, firm_id=firm, data_centre_id=dc, chip_model=chip,
                            chip_count=count, starts_on=starts_on, ends_on=ends_on,
                            purposes=list(purposes))

    def amend_lease(self, lease_id: str, on: str, **fields: Any) -> int:
        return self._log("lease", lease_id, Role.CHANGE, {"effective_from": on, **fields})

    def correct_lease(self, lease_id: str, **fields: Any) -> int:
        return self._log("lease", lease_id, Role.CORRECT, fields)

    def terminate(self, lease_id: str, on: str) -> int:
        return self._log("lease", lease_id, Role.END, {"effective_from": on})

    def due_diligence(self, lease_id: str, on: str, reference: str = "DD-1") -> int:
        return self._log("lease", lease_id, Role.DILIGENCE,
                         {"completed_on": on, "reference": reference})

    def shipment(self, shipment_id: str, chip: str = "nvidia-h20", to: str = "CN",
                 consignee: str = "alibaba", shipped_on: str = "2025-05-01",
                 from_country: str = "US", quantity: int = 800) -> int:
        return self._create("shipment", shipment_id, chip_model=chip, quantity=quantity,
                            from_country=from_country, to_country=to,
                            consignee_firm_id=consignee, shipped_on=shipped_on,
                            exporter="NVIDIA")

    def correct_shipment(self, shipment_id: str, **fields: Any) -> int:
        return self._log("shipment", shipment_id, Role.CORRECT, fields)

    def activity(self, activity_id: str, firm: str = "alibaba-sg",
                 subjects: tuple[str, ...] = ("CN",), dc: str | None = None,
                 country: str | None = None, sensitive: bool = True, count: int | None = None,
                 mechanism: str | None = None, starts_on: str = "2025-06-01",
                 ends_on: str | None = None) -> int:
        if dc is None and country is None:
            dc = "sg-dc2"
        return self._create("processing_activity", activity_id, firm_id=firm,
                            purpose="fine_tuning", data_subject_countries=list(subjects),
                            sensitive=sensitive, starts_on=starts_on, data_centre_id=dc,
                            location_country=country, subject_count=count,
                            transfer_mechanism=mechanism, ends_on=ends_on)

    def change_activity(self, activity_id: str, on: str, **fields: Any) -> int:
        return self._log("processing_activity", activity_id, Role.CHANGE,
                         {"effective_from": on, **fields})

    def end_activity(self, activity_id: str, on: str) -> int:
        return self._log("processing_activity", activity_id, Role.END, {"effective_from": on})

    # reading

    def findings(self, kind: str, record_id: str) -> list[Finding]:
        found = findings_for(self.world, SubjectRef(kind, record_id))
        _assert_one_per_subject_and_regulation_per_day(found)
        return found

    def all_findings(self) -> list[Finding]:
        return [f for s in self.world.subjects() for f in self.findings(s.kind, s.record_id)]

    def spans(self, kind: str, record_id: str) -> list[tuple[str, str, str | None, Status]]:
        """(regulation, valid_from, valid_to, status) for each finding: easy to read in asserts."""
        return [(f.regulation_id, f.valid_from.isoformat(),
                 f.valid_to.isoformat() if f.valid_to else None, f.status)
                for f in self.findings(kind, record_id)]

    def status(self, kind: str, record_id: str) -> Status | None:
        """The single finding's status, or None when the subject has no finding."""
        found = self.findings(kind, record_id)
        assert len(found) <= 1, found
        return found[0].status if found else None

    def posture(self, firm_id: str, day: str) -> tuple[Status, list[tuple[str, str]]]:
        p = posture_on(firm_id, self.all_findings(), D(day))
        return p.status, [(f.subject_id, f.regulation_id) for f in p.findings]


def _assert_one_per_subject_and_regulation_per_day(found: list[Finding]) -> None:
    by_key: dict[tuple[str, str, str], list[Finding]] = {}
    for f in found:
        by_key.setdefault(f.key, []).append(f)
    for group in by_key.values():
        group.sort(key=lambda f: f.valid_from)
        for a, b in pairwise(group):
            assert a.valid_to is not None, (a, b)
            assert a.valid_to <= b.valid_from, (a, b)


def base() -> Book:
    """Chips, a China-HQ'd group with a Singapore subsidiary (and its lab), others, three DCs."""
    book = Book()
    book.chip("nvidia-h100", 15830, 19.4)
    book.chip("nvidia-h20", 2368, 2.9)
    book.chip("huawei-910b", 9000, 14.0, origin="CN")
    book.firm("alibaba", "CN")
    book.firm("alibaba-sg", "SG", parent="alibaba")
    book.firm("alibaba-sg-labs", "SG", parent="alibaba-sg")
    book.firm("grab", "SG")
    book.firm("nusantara", "MY")
    book.data_centre("johor-dc1", "MY")
    book.data_centre("sg-dc2", "SG")
    book.data_centre("shanghai-dc", "CN")
    book.data_centre("virginia-dc", "US")
    return book


# export_licence: which chips ---------------------------------------------------------------------


def shipment_status(rule: dict[str, Any], chip: str | tuple[float, float, str] = "nvidia-h20",
                    **shipment: Any) -> Status | None:
    """The status of one shipment under one export rule in force since 2025-01-01; `chip` names
    a chip of the base world or gives (tpp, performance_density, origin) of a new one."""
    book = base()
    if isinstance(chip, tuple):
        book.chip("chip-x", *chip)
        chip = "chip-x"
    shipment["chip"] = chip
    book.regulation("reg", rule, "2025-01-01")
    book.shipment("s1", **shipment)
    return book.status("shipment", "s1")


def test_a_chip_listed_in_models_is_selected():
    assert shipment_status(H20_RULE, chip="nvidia-h20") is V


def test_a_chip_not_listed_in_models_is_not_selected_when_there_is_no_any_of():
    assert shipment_status(H20_RULE, chip="nvidia-h100") is None


@pytest.mark.parametrize(("tpp", "expected"), [(4800, V), (4799, None), (15830, V)])
def test_an_any_of_clause_with_min_tpp_selects_chips_at_or_above_it(tpp, expected):
    rule = export_rule(chips={"any_of": [{"min_tpp": 4800}]}, to_countries=["CN"])
    assert shipment_status(rule, chip=(tpp, 1.0, "US")) is expected


@pytest.mark.parametrize(
    ("tpp", "density", "expected"),
    [
        (2000, 6.0, V),  # both bounds of the second clause hold
        (1600, 5.92, V),  # bounds are inclusive
        (2000, 5.0, None),  # tpp holds, density does not
        (1500, 10.0, None),  # density holds, tpp does not
        (5000, 1.0, V),  # the first clause alone is enough
    ],
)
def test_every_bound_of_one_any_of_clause_must_hold(tpp, density, expected):
    rule = export_rule(
        chips={"any_of": [{"min_tpp": 4800}, {"min_tpp": 1600, "min_performance_density": 5.92}]},
        to_countries=["CN"])
    assert shipment_status(rule, chip=(tpp, density, "US")) is expected


def test_a_chip_listed_in_models_is_selected_even_when_it_fails_every_any_of_clause():
    rule = export_rule(chips={"models": ["nvidia-h20"], "any_of": [{"min_tpp": 4800}]},
                       to_countries=["CN"])
    assert shipment_status(rule, chip="nvidia-h20") is V
    assert shipment_status(rule, chip="nvidia-h100") is V  # by any_of
    assert shipment_status(rule, chip=(100, 1.0, "US")) is None


def test_origin_countries_must_also_hold_for_a_listed_chip():
    rule = export_rule(chips={"models": ["huawei-910b", "nvidia-h100"],
                              "origin_countries": ["US"]}, to_countries=["CN"])
    assert shipment_status(rule, chip="nvidia-h100") is V
    assert shipment_status(rule, chip="huawei-910b") is None


def test_origin_countries_must_also_hold_for_an_any_of_match():
    rule = export_rule(chips={"any_of": [{"min_tpp": 4800}], "origin_countries": ["US"]},
                       to_countries=["CN"])
    assert shipment_status(rule, chip="nvidia-h100") is V
    assert shipment_status(rule, chip="huawei-910b") is None


def test_origin_countries_alone_selects_every_chip_of_that_origin():
    rule = export_rule(chips={"origin_countries": ["US"]}, to_countries=["CN"])
    assert shipment_status(rule, chip="nvidia-h20") is V
    assert shipment_status(rule, chip="huawei-910b") is None


@pytest.mark.parametrize("chip", ["nvidia-h100", "nvidia-h20", "huawei-910b"])
def test_an_absent_chip_selector_selects_every_chip(chip):
    assert shipment_status(export_rule(to_countries=["CN"]), chip=chip) is V


# export_licence: which destinations --------------------------------------------------------------


def test_the_destination_test_holds_when_to_country_is_listed():
    rule = export_rule(to_countries=["CN", "HK"])
    assert shipment_status(rule, to="HK", consignee="grab") is V
    assert shipment_status(rule, to="SG", consignee="grab") is None


def test_the_destination_test_holds_when_the_consignee_is_headquartered_in_a_listed_country():
    rule = export_rule(consignee_hq_countries=["CN"])
    assert shipment_status(rule, to="SG", consignee="alibaba") is V
    assert shipment_status(rule, to="SG", consignee="grab") is None


def test_a_consignees_parents_hq_counts_for_the_destination_test():
    rule = export_rule(consignee_hq_countries=["CN"])
    assert shipment_status(rule, to="SG", consignee="alibaba-sg") is V


def test_any_firm_up_the_consignees_parent_chain_counts_for_the_destination_test():
    rule = export_rule(consignee_hq_countries=["CN"])
    assert shipment_status(rule, to="SG", consignee="alibaba-sg-labs") is V


def test_either_list_is_enough_for_the_destination_test():
    rule = export_rule(to_countries=["CN"], consignee_hq_countries=["CN"])
    assert shipment_status(rule, to="CN", consignee="grab") is V
    assert shipment_status(rule, to="MY", consignee="alibaba-sg") is V
    assert shipment_status(rule, to="MY", consignee="grab") is None


@pytest.mark.parametrize("to", ["CN", "SG", "US"])
def test_when_neither_destination_list_is_given_every_destination_holds(to):
    assert shipment_status(export_rule(), to=to, consignee="grab") is V


def test_from_countries_when_given_must_hold():
    rule = export_rule(to_countries=["CN"], from_countries=["MY"])
    assert shipment_status(rule, from_country="MY") is V
    assert shipment_status(rule, from_country="US") is None


def test_without_from_countries_a_shipment_from_anywhere_is_judged():
    assert shipment_status(export_rule(to_countries=["CN"]), from_country="MY") is V


# export_licence: the verdict ---------------------------------------------------------------------


def licensed_shipment(shipped_on: str = "2025-09-01", **licence: Any) -> Book:
    """An H20 shipment to alibaba in CN under H20_RULE, with one licence (overridable)."""
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    spec = {"holder": "alibaba", "chips": ["nvidia-h20"], "countries": ["CN"],
            "valid_from": "2025-08-08", **licence}
    book.licence("lic", **spec)
    book.shipment("s1", shipped_on=shipped_on)
    return book


def test_a_licence_of_the_authority_held_by_the_consignee_covering_chip_and_destination_complies():
    book = licensed_shipment()
    [finding] = book.findings("shipment", "s1")
    assert finding.status is C
    assert "lic" in finding.explanation


def test_without_any_licence_a_shipment_the_rule_applies_to_is_a_violation():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.shipment("s1")
    assert book.status("shipment", "s1") is V


@pytest.mark.parametrize(
    "licence",
    [
        {"authority": "MY-MITI"},  # the wrong authority
        {"holder": "alibaba-sg"},  # held by another firm (even a subsidiary)
        {"chips": ["nvidia-h100"]},  # does not cover the chip
        {"countries": ["HK"]},  # does not cover the destination
    ],
    ids=["authority", "holder", "chip", "destination"],
)
def test_a_licence_that_misses_authority_holder_chip_or_destination_does_not_cover(licence):
    assert licensed_shipment(**licence).status("shipment", "s1") is V


def test_a_licence_held_by_the_parent_does_not_cover_the_subsidiarys_shipment():
    book = base()
    book.regulation("reg", export_rule(consignee_hq_countries=["CN"]), "2025-01-01")
    book.licence("lic", "alibaba", ["nvidia-h20"], ["SG"], "2025-01-01")
    book.shipment("s1", to="SG", consignee="alibaba-sg")
    assert book.status("shipment", "s1") is V


def test_a_licence_valid_from_the_shipping_day_covers_it_and_not_the_day_before():
    assert licensed_shipment("2025-08-08").status("shipment", "s1") is C
    assert licensed_shipment("2025-08-07").status("shipment", "s1") is V


def test_a_licences_valid_to_is_inclusive():
    assert licensed_shipment("2025-09-01", valid_to="2025-09-01").status("shipment", "s1") is C
    assert licensed_shipment("2025-09-02", valid_to="2025-09-01").status("shipment", "s1") is V


@pytest.mark.parametrize(("revoked_from", "expected"),
                         [("2025-08-31", V), ("2025-09-01", V), ("2025-09-02", C)])
def test_a_licence_revoked_on_or_before_the_shipping_day_does_not_cover_it(revoked_from, expected):
    book = licensed_shipment("2025-09-01")
    book.revoke("lic", revoked_from)
    assert book.status("shipment", "s1") is expected


def test_any_one_valid_covering_licence_is_enough():
    book = licensed_shipment("2025-09-01", valid_to="2025-08-20")
    book.licence("lic-2", "alibaba", ["nvidia-h20", "nvidia-h100"], ["CN", "HK"], "2025-08-21")
    [finding] = book.findings("shipment", "s1")
    assert finding.status is C
    assert "lic-2" in finding.explanation


def test_a_shipments_finding_stays_on_the_record_from_its_shipping_day_on():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.shipment("s1", shipped_on="2025-05-01")
    book.rescind("us-bis-h20-2025", "2025-06-01")
    assert book.spans("shipment", "s1") == [("us-bis-h20-2025", "2025-05-01", None, V)]
    assert book.posture("alibaba", "2025-04-30")[0] is C
    assert book.posture("alibaba", "2025-05-01")[0] is V
    assert book.posture("alibaba", "2028-05-01") == (V, [("s1", "us-bis-h20-2025")])


def test_a_licence_valid_only_after_the_shipping_day_does_not_cure_a_past_violation():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.shipment("s1", shipped_on="2025-05-01")
    book.licence("lic", "alibaba", ["nvidia-h20"], ["CN"], "2025-05-02")
    assert book.spans("shipment", "s1") == [("us-bis-h20-2025", "2025-05-01", None, V)]


def test_a_licence_recorded_later_but_valid_on_the_shipping_day_covers_it():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.shipment("s1", shipped_on="2025-05-01")
    book.licence("lic", "alibaba", ["nvidia-h20"], ["CN"], "2025-04-01")
    assert book.spans("shipment", "s1") == [("us-bis-h20-2025", "2025-05-01", None, C)]


def test_a_shipment_before_the_rule_is_in_force_has_no_finding():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.shipment("early", shipped_on="2025-04-08")
    book.shipment("first-day", shipped_on="2025-04-09")
    assert book.findings("shipment", "early") == []
    assert book.status("shipment", "first-day") is V


def test_a_shipment_on_or_after_the_rescission_has_no_finding():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.rescind("us-bis-h20-2025", "2025-06-01")
    book.shipment("last-day", shipped_on="2025-05-31")
    book.shipment("rescinded", shipped_on="2025-06-01")
    assert book.status("shipment", "last-day") is V
    assert book.findings("shipment", "rescinded") == []


def test_a_shipment_is_judged_on_the_consignees_hq_as_it_stood_on_the_shipping_day():
    rule = export_rule(consignee_hq_countries=["CN"])
    moved_after = base()
    moved_after.regulation("reg", rule, "2025-01-01")
    moved_after.shipment("s1", to="SG", consignee="grab", shipped_on="2025-05-01")
    moved_after.change_firm("grab", "2025-05-02", hq_country="CN")
    assert moved_after.findings("shipment", "s1") == []

    left_after = base()
    left_after.regulation("reg", rule, "2025-01-01")
    left_after.shipment("s1", to="SG", consignee="alibaba", shipped_on="2025-05-01")
    left_after.change_firm("alibaba", "2025-05-02", hq_country="SG")
    assert left_after.status("shipment", "s1") is V

    moved_before = base()
    moved_before.regulation("reg", rule, "2025-01-01")
    moved_before.shipment("s1", to="SG", consignee="grab", shipped_on="2025-05-01")
    moved_before.change_firm("grab", "2025-05-01", hq_country="CN")
    assert moved_before.status("shipment", "s1") is V


def test_a_shipment_is_judged_on_the_consignees_parent_chain_as_it_stood_on_the_shipping_day():
    rule = export_rule(consignee_hq_countries=["CN"])
    book = base()
    book.regulation("reg", rule, "2025-01-01")
    book.shipment("before", to="SG", consignee="grab", shipped_on="2025-05-31")
    book.shipment("after", to="SG", consignee="grab", shipped_on="2025-06-01")
    book.change_firm("grab", "2025-06-01", parent_firm_id="alibaba")
    assert book.findings("shipment", "before") == []
    assert book.status("shipment", "after") is V

    detached = base()
    detached.regulation("reg", rule, "2025-01-01")
    detached.shipment("s1", to="SG", consignee="alibaba-sg", shipped_on="2025-05-31")
    detached.change_firm("alibaba-sg", "2025-06-01", parent_firm_id=None)
    detached.shipment("s2", to="SG", consignee="alibaba-sg", shipped_on="2025-06-01")
    assert detached.status("shipment", "s1") is V
    assert detached.findings("shipment", "s2") == []


def test_a_shipment_is_judged_on_the_rule_as_amended_by_its_shipping_day():
    book = base()
    book.regulation("reg", export_rule(to_countries=["CN"]), "2025-01-01")
    book.shipment("s1", to="CN", shipped_on="2025-05-01")
    book.shipment("s2", to="CN", shipped_on="2025-07-01")
    book.shipment("s3", to="MY", shipped_on="2025-07-01")
    book.amend_regulation("reg", "2025-07-01", export_rule(to_countries=["MY"]))
    assert book.status("shipment", "s1") is V  # the amendment came after: it does not matter
    assert book.findings("shipment", "s2") == []
    assert book.status("shipment", "s3") is V
    [finding] = book.findings("shipment", "s1")
    assert finding.valid_to is None


def test_a_shipment_correction_is_judged_on_the_corrected_facts():
    book = base()
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.shipment("s1", shipped_on="2025-03-01")
    assert book.findings("shipment", "s1") == []
    book.correct_shipment("s1", shipped_on="2025-05-01")
    assert book.spans("shipment", "s1") == [("us-bis-h20-2025", "2025-05-01", None, V)]


def test_a_shipment_finding_names_citation_explains_itself_and_rests_on_its_evidence():
    book = base()
    reg = book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    lic = book.licence("lic", "alibaba", ["nvidia-h20"], ["CN"], "2025-08-08")
    ship = book.shipment("s-17", shipped_on="2025-05-01")
    [finding] = book.findings("shipment", "s-17")
    assert (finding.firm_id, finding.subject_type, finding.subject_id) == (
        "alibaba", "shipment", "s-17")
    assert finding.citation == "cite us-bis-h20-2025"
    assert finding.explanation.startswith(
        "Shipment s-17 of 800 nvidia-h20 to CN on 2025-05-01 needs a US-BIS licence under "
        "us-bis-h20-2025")
    assert {reg, lic, ship} <= set(finding.evidence)
    assert list(finding.evidence) == sorted(finding.evidence)


# remote_compute_access: when it applies --------------------------------------------------------


def lease_spans(rule: dict[str, Any], effective_from: str = "2025-01-01",
                **lease: Any) -> list[tuple[str, str, str | None, Status]]:
    """The findings of one lease under one rule in force since `effective_from`."""
    book = base()
    book.regulation("reg", rule, effective_from)
    book.lease("l1", **lease)
    return book.spans("lease", "l1")


def test_a_lessee_headquartered_in_a_listed_country_is_caught():
    assert lease_spans(remote_rule(), firm="alibaba") == [("reg", "2025-04-01", None, V)]


def test_a_lessees_parents_hq_counts():
    assert lease_spans(remote_rule(), firm="alibaba-sg") == [("reg", "2025-04-01", None, V)]
    assert lease_spans(remote_rule(), firm="alibaba-sg-labs") == [("reg", "2025-04-01", None, V)]


def test_a_lessee_with_no_listed_hq_up_its_chain_is_not_caught():
    assert lease_spans(remote_rule(), firm="grab") == []


def test_a_data_centre_in_an_exempt_country_is_not_caught():
    assert lease_spans(remote_rule(exempt_dc_countries=["MY"]), dc="johor-dc1") == []
    assert lease_spans(remote_rule(exempt_dc_countries=["MY"]), dc="sg-dc2") != []


def test_dc_countries_when_given_limit_the_data_centres_caught():
    rule = remote_rule(dc_countries=["MY", "SG"])
    assert lease_spans(rule, dc="johor-dc1") == [("reg", "2025-04-01", None, V)]
    assert lease_spans(rule, dc="virginia-dc") == []


def test_without_dc_countries_a_data_centre_anywhere_not_exempt_is_caught():
    assert lease_spans(remote_rule(), dc="virginia-dc") == [("reg", "2025-04-01", None, V)]


def test_the_leased_chip_must_match_the_rules_chip_selector():
    rule = remote_rule(chips={"any_of": [{"min_tpp": 4800}]})
    assert lease_spans(rule, chip="nvidia-h100") == [("reg", "2025-04-01", None, V)]
    assert lease_spans(rule, chip="nvidia-h20") == []


@pytest.mark.parametrize(("count", "expected"), [(255, False), (256, True), (4096, True)])
def test_chip_count_must_reach_min_chips(count, expected):
    assert bool(lease_spans(remote_rule(min_chips=256), count=count)) is expected


def test_min_chips_defaults_to_one():
    assert lease_spans(remote_rule(), count=1) == [("reg", "2025-04-01", None, V)]


def test_purposes_when_given_must_overlap_the_leases():
    rule = remote_rule(purposes=["training", "fine_tuning"])
    assert lease_spans(rule, purposes=("inference",)) == []
    assert lease_spans(rule, purposes=("inference", "fine_tuning")) != []
    assert lease_spans(remote_rule(), purposes=("serving",)) != []


def test_a_lease_is_judged_on_the_lessees_hq_as_it_stands_each_day():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", firm="grab", ends_on="2025-12-31")
    book.change_firm("grab", "2025-07-01", parent_firm_id="alibaba")
    book.change_firm("grab", "2025-09-01", parent_firm_id=None)
    assert book.spans("lease", "l1") == [("reg", "2025-07-01", "2025-09-01", V)]


def test_a_lease_is_judged_on_the_data_centres_country_as_it_stands_each_day():
    book = base()
    book.regulation("reg", remote_rule(exempt_dc_countries=["SG"]), "2025-01-01")
    book.lease("l1", dc="johor-dc1")
    book.change_data_centre("johor-dc1", "2025-06-01", country="SG")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-06-01", V)]


def test_an_amendment_of_chip_count_below_min_chips_ends_the_finding_from_its_date():
    book = base()
    book.regulation("reg", remote_rule(min_chips=1000), "2025-01-01")
    book.lease("l1", count=2048, ends_on="2025-12-31")
    book.amend_lease("l1", "2025-07-01", chip_count=512)
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-07-01", V)]
    book.amend_lease("l1", "2025-10-01", chip_count=1000)
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-07-01", V),
                                         ("reg", "2025-10-01", "2026-01-01", V)]


def test_a_correction_fixes_the_value_before_a_later_amendment_and_does_not_undo_it():
    book = base()
    book.regulation("reg", remote_rule(min_chips=1000), "2025-01-01")
    book.lease("l1", count=2048, ends_on="2025-12-31")
    book.amend_lease("l1", "2025-07-01", chip_count=512)
    book.correct_lease("l1", chip_count=100)
    assert book.findings("lease", "l1") == []


# remote_compute_access: the lease's span ---------------------------------------------------------


def test_a_leases_finding_runs_through_its_inclusive_ends_on():
    assert lease_spans(remote_rule(), ends_on="2025-09-30") == [
        ("reg", "2025-04-01", "2025-10-01", V)]


def test_a_termination_effective_d_ends_the_leases_finding_on_d():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-09-30")
    book.terminate("l1", "2025-07-15")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-07-15", V)]


def test_an_amended_ends_on_moves_the_end_of_the_finding():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-09-30")
    book.amend_lease("l1", "2025-06-01", ends_on="2025-12-31")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2026-01-01", V)]


def test_a_lease_running_before_the_rule_is_in_force_is_caught_from_the_in_force_date():
    assert lease_spans(remote_rule(), effective_from="2025-05-13", ends_on="2025-09-30") == [
        ("reg", "2025-05-13", "2025-10-01", V)]


def test_a_lease_that_ended_before_the_rule_was_in_force_has_no_finding():
    assert lease_spans(remote_rule(), effective_from="2025-10-01", ends_on="2025-09-30") == []


# remote_compute_access: severity violation and licences ------------------------------------------


def licensed_lease(**licence: Any) -> Book:
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-12-31")
    spec = {"holder": "alibaba-sg", "chips": ["nvidia-h100"], "countries": ["MY"],
            "valid_from": "2025-01-01", **licence}
    book.licence("lic", **spec)
    return book


def test_a_licence_for_the_lessee_chip_and_dc_country_makes_the_lease_compliant():
    book = licensed_lease()
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2026-01-01", C)]
    assert "lic" in book.findings("lease", "l1")[0].explanation


@pytest.mark.parametrize(
    "licence",
    [{"holder": "alibaba"}, {"chips": ["nvidia-h20"]}, {"countries": ["SG"]},
     {"authority": "MY-MITI"}],
    ids=["parent-holds-it", "other-chip", "other-country", "other-authority"],
)
def test_a_licence_that_misses_lessee_chip_country_or_authority_leaves_a_violation(licence):
    assert licensed_lease(**licence).spans("lease", "l1") == [
        ("reg", "2025-04-01", "2026-01-01", V)]


def test_a_lease_is_compliant_exactly_while_its_licence_is_valid():
    book = licensed_lease(valid_from="2025-06-01", valid_to="2025-08-31")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-06-01", V),
                                         ("reg", "2025-06-01", "2025-09-01", C),
                                         ("reg", "2025-09-01", "2026-01-01", V)]


def test_a_revoked_licence_stops_covering_the_lease_from_the_revocation_date():
    book = licensed_lease()
    book.revoke("lic", "2025-10-15")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-10-15", C),
                                         ("reg", "2025-10-15", "2026-01-01", V)]


# remote_compute_access: severity attention and due diligence -------------------------------------


def test_an_attention_rule_flags_the_lease_until_due_diligence_and_is_compliant_from_it():
    book = base()
    book.regulation("reg", red_flag_rule(), "2025-05-13")
    book.lease("l1", ends_on="2025-09-30")
    book.due_diligence("l1", "2025-06-02")
    assert book.spans("lease", "l1") == [("reg", "2025-05-13", "2025-06-02", A),
                                         ("reg", "2025-06-02", "2025-10-01", C)]


def test_an_attention_rule_without_due_diligence_flags_the_whole_lease():
    assert lease_spans(red_flag_rule(), ends_on="2025-09-30") == [
        ("reg", "2025-04-01", "2025-10-01", A)]


def test_the_earliest_completed_on_counts_whatever_the_order_recorded():
    book = base()
    book.regulation("reg", red_flag_rule(), "2025-05-13")
    book.lease("l1", ends_on="2025-09-30")
    book.due_diligence("l1", "2025-08-01", "DD-2")
    book.due_diligence("l1", "2025-06-02", "DD-1")
    assert book.spans("lease", "l1") == [("reg", "2025-05-13", "2025-06-02", A),
                                         ("reg", "2025-06-02", "2025-10-01", C)]


def test_due_diligence_completed_before_the_rule_binds_makes_the_lease_compliant_throughout():
    book = base()
    book.regulation("reg", red_flag_rule(), "2025-05-13")
    book.lease("l1", ends_on="2025-09-30")
    book.due_diligence("l1", "2025-03-01")
    assert book.spans("lease", "l1") == [("reg", "2025-05-13", "2025-10-01", C)]


def test_an_attention_rule_needs_no_licence_and_a_licence_does_not_answer_it():
    book = base()
    book.regulation("reg", red_flag_rule(), "2025-05-13")
    book.licence("lic", "alibaba-sg", ["nvidia-h100"], ["MY"], "2025-01-01")
    book.lease("l1", ends_on="2025-09-30")
    assert book.spans("lease", "l1") == [("reg", "2025-05-13", "2025-10-01", A)]


# data_localisation --------------------------------------------------------------------------------


def activity_spans(rule: dict[str, Any], **activity: Any
                   ) -> list[tuple[str, str, str | None, Status]]:
    book = base()
    book.regulation("pipl", rule, "2025-01-01", authority="CN-CAC")
    book.activity("a1", **activity)
    return book.spans("processing_activity", "a1")


def test_named_subjects_processed_in_a_dc_outside_their_country_without_mechanism_is_a_violation():
    assert activity_spans(local_rule(), dc="sg-dc2") == [("pipl", "2025-06-01", None, V)]


def test_named_subjects_processed_in_a_location_country_outside_theirs_is_judged():
    assert activity_spans(local_rule(), country="SG") == [("pipl", "2025-06-01", None, V)]


def test_processing_inside_the_subjects_country_has_no_finding():
    assert activity_spans(local_rule(), dc="shanghai-dc") == []
    assert activity_spans(local_rule(), country="CN") == []


def test_an_accepted_transfer_mechanism_makes_it_compliant():
    rule = local_rule(accepted_mechanisms=["security_assessment", "certification"])
    assert activity_spans(rule, mechanism="security_assessment") == [
        ("pipl", "2025-06-01", None, C)]
    assert activity_spans(rule, mechanism="standard_contract") == [
        ("pipl", "2025-06-01", None, V)]
    assert activity_spans(rule) == [("pipl", "2025-06-01", None, V)]


@pytest.mark.parametrize("mechanism",
                         ["security_assessment", "standard_contract", "certification", None])
def test_an_empty_accepted_list_accepts_nothing(mechanism):
    assert activity_spans(local_rule(accepted_mechanisms=[]), mechanism=mechanism) == [
        ("pipl", "2025-06-01", None, V)]


def test_subjects_of_no_named_country_have_no_finding():
    assert activity_spans(local_rule(), subjects=("SG", "MY"), dc="johor-dc1") == []


def test_one_named_subject_country_processed_elsewhere_is_enough():
    assert activity_spans(local_rule(), subjects=("SG", "CN")) == [
        ("pipl", "2025-06-01", None, V)]
    rule = local_rule(data_subject_countries=["CN", "SG"])
    # processed in CN: the CN data is at home, but the SG data is not
    assert activity_spans(rule, subjects=("CN", "SG"), country="CN") == [
        ("pipl", "2025-06-01", None, V)]
    assert activity_spans(rule, subjects=("CN",), country="CN") == []


def test_sensitive_only_skips_non_sensitive_data():
    rule = local_rule(sensitive_only=True)
    assert activity_spans(rule, sensitive=False) == []
    assert activity_spans(rule, sensitive=True) == [("pipl", "2025-06-01", None, V)]
    assert activity_spans(local_rule(), sensitive=False) == [("pipl", "2025-06-01", None, V)]


@pytest.mark.parametrize(("count", "expected"), [(9999, False), (10000, True), (50000, True)])
def test_min_subjects_needs_subject_count_at_least_that(count, expected):
    assert bool(activity_spans(local_rule(min_subjects=10000), count=count)) is expected


def test_an_unknown_subject_count_cannot_prove_the_activity_is_under_min_subjects():
    assert activity_spans(local_rule(min_subjects=10000), count=None) == [
        ("pipl", "2025-06-01", None, V)]


def test_an_unknown_count_before_a_small_one_still_counts_for_min_subjects():
    # Step 1: an activity of unknown size, later counted under the threshold.
    book = base()
    book.regulation("pipl", local_rule(min_subjects=10000), "2025-01-01", authority="CN-CAC")
    book.activity("a1")
    book.change_activity("a1", "2025-08-01", subject_count=500)
    # Step 2: the rule binds while the count is unknown, and not after.
    assert book.spans("processing_activity", "a1") == [("pipl", "2025-06-01", "2025-08-01", V)]


def test_a_lease_amended_into_a_rule_is_judged_from_the_amendment():
    # Step 1: a lease too small for the rule, amended to a size it catches.
    book = base()
    book.regulation("remote", remote_rule(min_chips=1000), "2025-01-01")
    book.lease("l1", count=10)
    book.amend_lease("l1", "2025-06-01", chip_count=4096)
    # Step 2: only the amended span has a finding.
    assert [s[1:3] for s in book.spans("lease", "l1")] == [("2025-06-01", None)]


def test_an_activitys_finding_runs_through_its_inclusive_ends_on():
    assert activity_spans(local_rule(), ends_on="2025-06-30") == [
        ("pipl", "2025-06-01", "2025-07-01", V)]


def test_processing_ended_effective_d_ends_the_finding_on_d():
    book = base()
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.activity("a1")
    book.end_activity("a1", "2025-09-01")
    assert book.spans("processing_activity", "a1") == [("pipl", "2025-06-01", "2025-09-01", V)]


def test_moving_the_processing_home_ends_the_finding_from_the_change():
    book = base()
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.activity("a1", dc="sg-dc2")
    book.change_activity("a1", "2025-08-01", location_country="CN")
    assert book.spans("processing_activity", "a1") == [("pipl", "2025-06-01", "2025-08-01", V)]


def test_a_transfer_mechanism_from_a_date_makes_the_activity_compliant_from_then():
    book = base()
    book.regulation("pipl", local_rule(accepted_mechanisms=["security_assessment"]),
                    "2025-01-01", authority="CN-CAC")
    book.activity("a1")
    book.change_activity("a1", "2025-08-01", transfer_mechanism="security_assessment")
    assert book.spans("processing_activity", "a1") == [("pipl", "2025-06-01", "2025-08-01", V),
                                                        ("pipl", "2025-08-01", None, C)]


def test_an_activity_is_judged_on_its_data_centres_country_as_it_stands_each_day():
    book = base()
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.activity("a1", dc="sg-dc2")
    book.change_data_centre("sg-dc2", "2025-07-01", country="CN")
    assert book.spans("processing_activity", "a1") == [("pipl", "2025-06-01", "2025-07-01", V)]


def test_the_rule_kinds_judge_only_their_own_subjects():
    book = base()
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.regulation("h20", H20_RULE, "2025-01-01")
    book.regulation("remote", remote_rule(), "2025-01-01")
    book.activity("a1")
    book.lease("l1")
    book.shipment("s1")
    assert {f.regulation_id for f in book.findings("processing_activity", "a1")} == {"pipl"}
    assert {f.regulation_id for f in book.findings("lease", "l1")} == {"remote"}
    assert {f.regulation_id for f in book.findings("shipment", "s1")} == {"h20"}


# in force: compliance dates, rescissions, amendments ----------------------------------------------


def test_a_rule_is_in_force_from_the_later_of_effective_from_and_compliance_from():
    book = base()
    book.regulation("later-compliance", remote_rule(), "2025-01-13", "2025-05-15")
    book.regulation("earlier-compliance", remote_rule(), "2025-05-01", "2025-02-01")
    book.lease("l1", ends_on="2025-09-30")
    assert book.spans("lease", "l1") == [
        ("earlier-compliance", "2025-05-01", "2025-10-01", V),
        ("later-compliance", "2025-05-15", "2025-10-01", V),
    ]


def test_a_rule_rescinded_before_its_compliance_date_is_never_in_force():
    """The AI Diffusion case: effective 2025-01-13, compliance 2025-05-15, rescinded 05-13."""
    book = base()
    book.regulation("ai-diffusion", remote_rule(), "2025-01-13", "2025-05-15")
    book.amend_regulation("ai-diffusion", "2025-03-01", remote_rule(lessee_hq_countries=["SG"]))
    book.rescind("ai-diffusion", "2025-05-13")
    book.regulation("ai-diffusion-exports", export_rule(), "2025-01-13", "2025-05-15")
    book.rescind("ai-diffusion-exports", "2025-05-13")
    book.lease("l1", firm="alibaba", ends_on="2025-12-31")
    book.lease("l2", firm="grab", ends_on="2025-12-31")
    for day in ("2025-01-13", "2025-05-12", "2025-05-14", "2025-05-15", "2025-06-01"):
        book.shipment(f"s-{day}", shipped_on=day)
    assert book.all_findings() == []


def test_a_rule_rescinded_on_its_compliance_date_is_never_in_force():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-13", "2025-05-15")
    book.rescind("reg", "2025-05-15")
    book.lease("l1")
    assert book.findings("lease", "l1") == []


def test_a_rescission_ends_running_findings_from_its_date():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-12-31")
    book.rescind("reg", "2025-08-01")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-08-01", V)]


def test_an_amendment_swaps_the_parameters_from_its_effective_from():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", dc="johor-dc1", ends_on="2025-12-31")
    book.lease("l2", dc="sg-dc2", ends_on="2025-12-31")
    book.amend_regulation("reg", "2025-07-01", remote_rule(exempt_dc_countries=["MY"]))
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-07-01", V)]
    assert book.spans("lease", "l2") == [("reg", "2025-04-01", "2026-01-01", V)]


def test_an_amendment_can_bring_a_subject_under_the_rule_from_its_date():
    book = base()
    book.regulation("reg", remote_rule(severity="violation", exempt_dc_countries=["MY"]),
                    "2025-01-01")
    book.lease("l1", ends_on="2025-12-31")
    book.amend_regulation("reg", "2025-07-01", red_flag_rule())
    assert book.spans("lease", "l1") == [("reg", "2025-07-01", "2026-01-01", A)]


def test_the_latest_amendment_effective_on_a_day_wins_whatever_the_order_recorded():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-12-31")
    book.amend_regulation("reg", "2025-09-01", remote_rule())
    book.amend_regulation("reg", "2025-07-01", remote_rule(exempt_dc_countries=["MY"]))
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-07-01", V),
                                         ("reg", "2025-09-01", "2026-01-01", V)]


def test_an_amendment_effective_before_the_compliance_date_holds_from_the_in_force_date():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-13", "2025-05-15")
    book.amend_regulation("reg", "2025-03-01", remote_rule(exempt_dc_countries=["MY"]))
    book.lease("l1", dc="johor-dc1")
    book.lease("l2", dc="sg-dc2")
    assert book.findings("lease", "l1") == []
    assert book.spans("lease", "l2") == [("reg", "2025-05-15", None, V)]


def test_compliance_from_belongs_to_the_regulation_not_to_an_amendment():
    # an amendment effective after the enactment but before compliance does not move the start
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-13", "2025-05-15")
    book.amend_regulation("reg", "2025-04-01", remote_rule(min_chips=2))
    book.lease("l1")
    assert book.spans("lease", "l1") == [("reg", "2025-05-15", None, V)]


def test_findings_of_one_subject_merge_equal_neighbouring_pieces():
    # a cut where nothing relevant changes (an unrelated firm change) leaves one finding
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-12-31")
    book.change_firm("alibaba-sg", "2025-06-01", name="Renamed")
    book.amend_regulation("reg", "2025-08-01", remote_rule(min_chips=2))
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2026-01-01", V)]


# posture --------------------------------------------------------------------------------------


def test_posture_is_the_worst_status_of_the_findings_holding_that_day():
    book = base()
    book.regulation("red-flag", red_flag_rule(), "2025-05-13")
    book.regulation("h20", H20_RULE, "2025-04-09")
    book.licence("lic", "alibaba-sg", ["nvidia-h20"], ["CN"], "2025-01-01")
    book.lease("l1", ends_on="2025-09-30")
    book.shipment("ok", consignee="alibaba-sg", shipped_on="2025-05-01")
    book.shipment("bad", consignee="alibaba-sg", to="HK", shipped_on="2025-07-01")
    assert book.posture("alibaba-sg", "2025-05-01") == (C, [("ok", "h20")])
    assert book.posture("alibaba-sg", "2025-05-13") == (A, [("l1", "red-flag"), ("ok", "h20")])
    assert book.posture("alibaba-sg", "2025-07-01") == (
        V, [("l1", "red-flag"), ("bad", "h20"), ("ok", "h20")])
    assert book.posture("alibaba-sg", "2025-10-01") == (V, [("bad", "h20"), ("ok", "h20")])


def test_a_firm_with_no_finding_is_compliant():
    book = base()
    book.regulation("h20", H20_RULE, "2025-04-09")
    assert book.posture("grab", "2025-06-01") == (C, [])
    posture = posture_on("nobody", [], D("2025-06-01"))
    assert (posture.firm_id, posture.day, posture.status, posture.findings) == (
        "nobody", D("2025-06-01"), C, [])


def test_posture_lists_compliant_findings_too():
    book = licensed_lease()
    assert book.posture("alibaba-sg", "2025-06-01") == (C, [("l1", "reg")])


def test_a_finding_holds_from_valid_from_up_to_but_not_on_valid_to():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-09-30")
    assert book.posture("alibaba-sg", "2025-03-31") == (C, [])
    assert book.posture("alibaba-sg", "2025-04-01")[0] is V
    assert book.posture("alibaba-sg", "2025-09-30")[0] is V
    assert book.posture("alibaba-sg", "2025-10-01") == (C, [])


def test_a_firm_answers_only_for_its_own_subjects_not_its_subsidiaries():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", firm="alibaba-sg")
    assert book.posture("alibaba-sg", "2025-06-01") == (V, [("l1", "reg")])
    assert book.posture("alibaba", "2025-06-01") == (C, [])


def test_a_firm_answers_as_lessee_consignee_and_processing_firm():
    book = base()
    book.regulation("remote", remote_rule(), "2025-01-01")
    book.regulation("h20", H20_RULE, "2025-01-01")
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.lease("l1", firm="alibaba-sg")
    book.shipment("s1", consignee="alibaba-sg")
    book.activity("a1", firm="alibaba-sg")
    book.lease("l-other", firm="alibaba")
    status, findings = book.posture("alibaba-sg", "2025-06-01")
    assert status is V
    assert findings == [("l1", "remote"), ("a1", "pipl"), ("s1", "h20")]


# residency ------------------------------------------------------------------------------------


def test_residency_is_the_worst_data_localisation_status_with_where_each_country_was_processed():
    book = base()
    book.regulation("pipl", local_rule(accepted_mechanisms=["security_assessment"]),
                    "2025-01-01", authority="CN-CAC")
    book.regulation("remote", remote_rule(), "2025-01-01")
    book.lease("l1")  # a violation, but not a residency one
    book.activity("a-home", subjects=("CN",), country="CN")
    book.activity("a-ok", subjects=("CN", "SG"), dc="sg-dc2", mechanism="security_assessment")
    book.activity("a-bad", subjects=("CN",), dc="johor-dc1", starts_on="2025-07-01")
    findings = book.all_findings()

    status, local, rows = residency_on(book.world, "alibaba-sg", findings, D("2025-06-15"))
    assert status is C
    assert [(f.subject_id, f.status) for f in local] == [("a-ok", C)]
    assert rows == [Processing("CN", "CN", "a-home", C),
                    Processing("CN", "SG", "a-ok", C),
                    Processing("SG", "SG", "a-ok", C)]

    status, local, rows = residency_on(book.world, "alibaba-sg", findings, D("2025-07-01"))
    assert status is V
    assert [(f.subject_id, f.status) for f in local] == [("a-bad", V), ("a-ok", C)]
    assert Processing("CN", "MY", "a-bad", V) in rows
    assert posture_on("alibaba-sg", findings, D("2025-06-15")).status is V


def test_residency_lists_only_the_firms_activities_running_that_day():
    book = base()
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.activity("a1", ends_on="2025-06-30")
    book.activity("theirs", firm="alibaba")
    findings = book.all_findings()
    assert residency_on(book.world, "alibaba-sg", findings, D("2025-05-31")) == (C, [], [])
    status, _, rows = residency_on(book.world, "alibaba-sg", findings, D("2025-06-30"))
    assert (status, rows) == (V, [Processing("CN", "SG", "a1", V)])
    assert residency_on(book.world, "alibaba-sg", findings, D("2025-07-01")) == (C, [], [])


def test_residency_follows_a_move_of_the_processing():
    book = base()
    book.regulation("pipl", local_rule(), "2025-01-01", authority="CN-CAC")
    book.activity("a1", dc="sg-dc2")
    book.change_activity("a1", "2025-08-01", location_country="CN")
    findings = book.all_findings()
    assert residency_on(book.world, "alibaba-sg", findings, D("2025-07-31"))[2] == [
        Processing("CN", "SG", "a1", V)]
    assert residency_on(book.world, "alibaba-sg", findings, D("2025-08-01")) == (
        C, [], [Processing("CN", "CN", "a1", C)])


# timeline -------------------------------------------------------------------------------------


def test_timeline_gives_consecutive_pieces_of_posture():
    book = base()
    book.regulation("red-flag", red_flag_rule(), "2025-05-13")
    book.lease("l1", ends_on="2025-09-30")
    book.due_diligence("l1", "2025-06-02")
    assert timeline("alibaba-sg", book.all_findings(), D("2025-01-01"), D("2026-01-01")) == [
        (D("2025-01-01"), D("2025-05-13"), C),
        (D("2025-05-13"), D("2025-06-02"), A),
        (D("2025-06-02"), D("2026-01-01"), C),
    ]


def test_timeline_merges_neighbouring_pieces_of_equal_status():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-05-31")
    book.lease("l2", starts_on="2025-06-01", ends_on="2025-06-30")
    book.lease("l3", starts_on="2025-06-15", ends_on="2025-07-31")
    assert timeline("alibaba-sg", book.all_findings(), D("2025-01-01"), D("2026-01-01")) == [
        (D("2025-01-01"), D("2025-04-01"), C),
        (D("2025-04-01"), D("2025-08-01"), V),
        (D("2025-08-01"), D("2026-01-01"), C),
    ]


def test_timeline_is_clipped_to_its_window_and_ignores_other_firms():
    book = base()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1", ends_on="2025-09-30")
    book.lease("theirs", firm="alibaba", starts_on="2025-02-01")
    assert timeline("alibaba-sg", book.all_findings(), D("2025-06-01"), D("2025-12-01")) == [
        (D("2025-06-01"), D("2025-10-01"), V),
        (D("2025-10-01"), D("2025-12-01"), C),
    ]
    assert timeline("grab", book.all_findings(), D("2025-06-01"), D("2025-12-01")) == [
        (D("2025-06-01"), D("2025-12-01"), C)]


# worked scenarios (domain-facts.md §5) -------------------------------------------------------


def test_s1_lease_in_malaysia_by_the_singapore_subsidiary_of_a_chinese_group():
    book = base()
    # the lessor's H100s came from the US in 2024 under no licence requirement
    book.shipment("h100-import", chip="nvidia-h100", to="MY", consignee="nusantara",
                  shipped_on="2024-06-01", quantity=4096)
    book.regulation("bis-3a090", export_rule(
        chips={"any_of": [{"min_tpp": 4800}, {"min_tpp": 1600, "min_performance_density": 5.92}],
               "origin_countries": ["US"]},
        to_countries=["CN", "MO"], consignee_hq_countries=["CN", "MO"]), "2023-11-17")
    book.regulation("ai-diffusion", remote_rule(), "2025-01-13", "2025-05-15")
    book.rescind("ai-diffusion", "2025-05-13")
    book.regulation("bis-red-flag-2025", red_flag_rule(), "2025-05-13")
    book.regulation("my-sta-permit", export_rule(
        chips={"origin_countries": ["US"], "any_of": [{"min_tpp": 4800}]},
        from_countries=["MY"], licence_authority="MY-MITI"), "2025-07-14", authority="MY-MITI")
    book.lease("lease-ali-johor", firm="alibaba-sg", dc="johor-dc1", chip="nvidia-h100",
               count=2048, starts_on="2025-04-01", ends_on="2025-09-30")
    book.due_diligence("lease-ali-johor", "2025-06-02")

    assert book.findings("shipment", "h100-import") == []
    assert book.spans("lease", "lease-ali-johor") == [
        ("bis-red-flag-2025", "2025-05-13", "2025-06-02", A),
        ("bis-red-flag-2025", "2025-06-02", "2025-10-01", C),
    ]
    assert book.posture("alibaba-sg", "2025-05-12") == (C, [])
    assert book.posture("alibaba-sg", "2025-05-15") == (
        A, [("lease-ali-johor", "bis-red-flag-2025")])
    assert book.posture("alibaba-sg", "2025-07-14") == (
        C, [("lease-ali-johor", "bis-red-flag-2025")])
    assert book.posture("alibaba", "2025-05-15") == (C, [])
    assert book.posture("nusantara", "2025-08-01") == (C, [])


def test_s2_h20_shipments_before_the_requirement_without_and_under_a_licence():
    book = base()
    book.regulation("bis-3a090", export_rule(
        chips={"any_of": [{"min_tpp": 4800}, {"min_tpp": 1600, "min_performance_density": 5.92}],
               "origin_countries": ["US"]},
        to_countries=["CN", "MO"]), "2023-11-17")
    book.regulation("us-bis-h20-2025", H20_RULE, "2025-04-09")
    book.licence("bis-lic-h20-ali", "alibaba", ["nvidia-h20"], ["CN"], "2025-08-08")
    book.shipment("ship-0301", shipped_on="2025-03-01")
    book.shipment("ship-0501", shipped_on="2025-05-01")
    book.shipment("ship-0901", shipped_on="2025-09-01")

    assert book.findings("shipment", "ship-0301") == []
    assert book.spans("shipment", "ship-0501") == [("us-bis-h20-2025", "2025-05-01", None, V)]
    assert book.spans("shipment", "ship-0901") == [("us-bis-h20-2025", "2025-09-01", None, C)]
    assert book.posture("alibaba", "2025-03-01") == (C, [])
    assert book.posture("alibaba", "2025-09-01") == (
        V, [("ship-0501", "us-bis-h20-2025"), ("ship-0901", "us-bis-h20-2025")])


def test_s3_fine_tuning_on_chinese_bank_customers_data_in_singapore():
    book = base()
    book.firm("cn-bank", "CN")
    book.regulation("pipl-sensitive", local_rule(sensitive_only=True, min_subjects=10000,
                                                 accepted_mechanisms=["security_assessment"]),
                    "2024-03-22", authority="CN-CAC")
    book.activity("ft-bank-sg", firm="cn-bank", dc="sg-dc2", sensitive=True, count=50000)
    book.activity("ft-small", firm="cn-bank", dc="sg-dc2", sensitive=False, count=5000)
    book.activity("ft-assessed", firm="cn-bank", dc="sg-dc2", count=50000,
                  mechanism="security_assessment")
    assert book.spans("processing_activity", "ft-bank-sg") == [
        ("pipl-sensitive", "2025-06-01", None, V)]
    assert book.findings("processing_activity", "ft-small") == []
    assert book.status("processing_activity", "ft-assessed") is C


def test_s4_h100s_re_exported_from_malaysia_to_china_under_both_jurisdictions():
    book = base()
    book.regulation("bis-3a090", export_rule(
        chips={"any_of": [{"min_tpp": 4800}], "origin_countries": ["US"]},
        to_countries=["CN", "MO"]), "2023-11-17")
    book.regulation("my-sta-permit", export_rule(
        chips={"origin_countries": ["US"], "any_of": [{"min_tpp": 4800}]},
        from_countries=["MY"], licence_authority="MY-MITI"), "2025-07-14", authority="MY-MITI")
    book.shipment("reexport-0601", chip="nvidia-h100", from_country="MY", shipped_on="2025-06-01")
    book.shipment("reexport-0801", chip="nvidia-h100", from_country="MY", shipped_on="2025-08-01")
    assert book.spans("shipment", "reexport-0601") == [("bis-3a090", "2025-06-01", None, V)]
    assert book.spans("shipment", "reexport-0801") == [
        ("bis-3a090", "2025-08-01", None, V), ("my-sta-permit", "2025-08-01", None, V)]
