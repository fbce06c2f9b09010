"""domain.md, "Licence quantities, restricted parties, ownership, suspensions": each rule of
the section pinned by a test that names it, on worlds built by hand (no database)."""

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from domain.application import Append, Ledger
from domain.errors import InvalidRecordError
from domain.evaluator import in_force
from domain.kinds import KINDS, Role
from domain.ownership import owners_on
from domain.records import LoggedEvent, check_event
from domain.types import Status
from domain.world import SubjectRef
from tests.domain.test_evaluator import H20_RULE, Book, base, local_rule, remote_rule

C, V = Status.COMPLIANT, Status.VIOLATION
D = date.fromisoformat


class Law(Book):
    """The hand-built world, with round two's appends."""

    def suspend(self, reg_id: str, on: str, until: str | None = None) -> int:
        body: dict[str, Any] = {"effective_from": on, "reason": "trade deal"}
        if until is not None:
            body["until"] = until
        return self._log("regulation", reg_id, Role.SUSPEND, body)

    def reinstate(self, reg_id: str, on: str) -> int:
        return self._log("regulation", reg_id, Role.REINSTATE, {"effective_from": on})

    def quota(self, licence_id: str, quantity: int | None, holder: str = "alibaba",
              chips: tuple[str, ...] = ("nvidia-h20",), countries: tuple[str, ...] = ("CN",),
              valid_from: str = "2025-01-01", valid_to: str | None = None,
              authority: str = "US-BIS") -> int:
        return self._create("licence", licence_id, authority=authority, holder_firm_id=holder,
                            chip_models=list(chips), destination_countries=list(countries),
                            valid_from=valid_from, valid_to=valid_to, quantity=quantity)

    def ship(self, shipment_id: str, shipped_on: str, quantity: int = 800,
             licence: str | None = None, **fields: Any) -> int:
        body = {"chip_model": "nvidia-h20", "quantity": quantity, "from_country": "US",
                "to_country": "CN", "consignee_firm_id": "alibaba", "shipped_on": shipped_on,
                "licence_id": licence, **fields}
        return self._create("shipment", shipment_id, **body)

    def explanation(self, shipment_id: str) -> str:
        [only] = self.findings("shipment", shipment_id)
        return only.explanation


def law() -> Law:
    book = base()
    book.__class__ = Law
    assert isinstance(book, Law)
    return book


# Regulation suspensions -------------------------------------------------------------------------


def test_suspension_takes_a_regulation_out_of_force_on_the_days_it_covers_without_ending_it():
    book = law()
    book.regulation("reg", H20_RULE, "2025-04-09")
    book.suspend("reg", "2025-11-10", until="2026-11-09")
    book.shipment("s-oct", shipped_on="2025-10-01")
    book.shipment("s-first", shipped_on="2025-11-10")
    book.shipment("s-last", shipped_on="2026-11-09")
    book.shipment("s-after", shipped_on="2026-11-10")
    assert book.status("shipment", "s-oct") == V
    assert book.status("shipment", "s-first") is None
    assert book.status("shipment", "s-last") is None
    assert book.status("shipment", "s-after") == V


def test_suspension_without_until_holds_until_a_reinstatement_ends_it_from_that_day():
    book = law()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1")
    book.suspend("reg", "2025-05-10")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-05-10", V)]
    book.reinstate("reg", "2025-06-10")
    assert book.spans("lease", "l1") == [("reg", "2025-04-01", "2025-05-10", V),
                                         ("reg", "2025-06-10", None, V)]


def test_suspensions_may_overlap_and_a_reinstatement_ends_every_one_covering_its_day():
    book = law()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.suspend("reg", "2025-03-01", until="2025-06-30")
    book.suspend("reg", "2025-05-01")
    pieces = [(p.start.isoformat(), p.end) for p in in_force(book.world.get("regulation", "reg"))]
    assert pieces == [("2025-01-01", book_day("2025-03-01"))]
    book.reinstate("reg", "2025-05-15")
    pieces = [(p.start.isoformat(), p.end) for p in in_force(book.world.get("regulation", "reg"))]
    assert pieces == [("2025-01-01", book_day("2025-03-01")), ("2025-05-15", None)]


def test_suspension_keeps_the_amended_parameters_on_either_side_of_the_hole():
    book = law()
    book.regulation("reg", remote_rule(min_chips=1), "2025-01-01")
    book.amend_regulation("reg", "2025-06-01", remote_rule(min_chips=4096))
    book.suspend("reg", "2025-05-01", until="2025-06-30")
    pieces = in_force(book.world.get("regulation", "reg"))
    assert [(p.start.isoformat(), p.rule.min_chips) for p in pieces] == [
        ("2025-01-01", 1), ("2025-07-01", 4096)]


def test_suspension_with_until_before_effective_from_is_refused():
    book = law()
    book.regulation("reg", H20_RULE, "2025-04-09")
    state = book.world.get("regulation", "reg")
    with pytest.raises(InvalidRecordError) as refused:
        check_event(state, LoggedEvent("RegulationSuspended",
                                       {"effective_from": "2025-11-10", "until": "2025-11-09"}))
    assert refused.value.problems[0].loc == ("until",)


def test_a_reinstatement_on_a_day_no_suspension_covers_is_refused():
    book = law()
    book.regulation("reg", H20_RULE, "2025-04-09")
    book.suspend("reg", "2025-11-10", until="2025-11-30")
    state = book.world.get("regulation", "reg")
    for day in ("2025-11-09", "2025-12-01"):
        with pytest.raises(InvalidRecordError) as refused:
            check_event(state, LoggedEvent("RegulationReinstated", {"effective_from": day}))
        assert refused.value.problems[0].loc == ("effective_from",)
    check_event(state, LoggedEvent("RegulationReinstated", {"effective_from": "2025-11-30"}))


def test_a_suspension_covering_every_day_equals_no_regulation():
    book = law()
    book.regulation("reg", remote_rule(), "2025-01-01")
    book.lease("l1")
    book.shipment("s1")
    book.suspend("reg", "2025-01-01")
    assert book.all_findings() == []


def book_day(day: str) -> date:
    return date.fromisoformat(day)


# Licence quantities -----------------------------------------------------------------------------


def h20_law() -> Law:
    book = law()
    book.regulation("reg", H20_RULE, "2025-04-09")
    return book


def test_licence_quantity_is_the_total_over_all_shipments_the_third_shipment_finds_it_spent():
    book = h20_law()
    book.quota("lic-1000", 1000)
    book.ship("s1", "2025-05-01", 400)
    book.ship("s2", "2025-05-02", 400)
    book.ship("s3", "2025-05-03", 400)
    assert [book.status("shipment", s) for s in ("s1", "s2", "s3")] == [C, C, V]
    assert "licence lic-1000 has 200 of 1,000 left; shipment s3 needs 400" in \
        book.explanation("s3")
    assert "which has 600 of 1,000 left" in book.explanation("s1")


def test_licence_quantity_shipments_draw_in_order_of_shipped_on_not_of_recording():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("late", "2025-06-01", 800)
    book.ship("early", "2025-05-01", 800)
    assert (book.status("shipment", "early"), book.status("shipment", "late")) == (C, V)
    assert "licence lic has 200 of 1,000 left; shipment late needs 800" in \
        book.explanation("late")


def test_licence_quantity_ties_on_shipped_on_go_by_the_position_of_shipment_recorded():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("b-first", "2025-05-01", 800)
    book.ship("a-second", "2025-05-01", 800)
    assert (book.status("shipment", "b-first"), book.status("shipment", "a-second")) == (C, V)


def test_licence_quantity_a_licence_without_quantity_always_has_enough():
    book = h20_law()
    book.quota("lic", None)
    for n in range(5):
        book.ship(f"s{n}", f"2025-05-0{n + 1}", 10**6)
    assert {book.status("shipment", f"s{n}") for n in range(5)} == {C}


def test_licence_quantity_a_shipment_finding_no_licence_with_enough_draws_nothing():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("big", "2025-05-01", 1200)
    book.ship("small", "2025-05-02", 1000)
    assert (book.status("shipment", "big"), book.status("shipment", "small")) == (V, C)


def test_licence_quantity_the_covering_licence_with_the_earliest_valid_to_is_drawn_first():
    book = h20_law()
    book.quota("open", 1000)
    book.quota("z-late", 1000, valid_to="2025-12-31")
    book.quota("a-late", 1000, valid_to="2025-12-31")
    book.quota("soon", 1000, valid_to="2025-06-30")
    book.ship("s1", "2025-05-01", 800)
    book.ship("s2", "2025-05-02", 800)
    book.ship("s3", "2025-05-03", 800)
    book.ship("s4", "2025-05-04", 800)
    drawn = [book.explanation(s).split("licence ")[1].split(" ")[0] for s in
             ("s1", "s2", "s3", "s4")]
    assert drawn == ["soon", "a-late", "z-late", "open"]


def test_licence_quantity_a_licence_not_valid_on_shipped_on_is_not_drawn():
    book = h20_law()
    book.quota("expired", 1000, valid_to="2025-04-30")
    book.quota("later", 1000)
    book.ship("s1", "2025-05-01", 800)
    assert "licence later" in book.explanation("s1")


def test_licence_quantity_a_shipment_naming_a_licence_is_covered_only_by_that_licence():
    book = h20_law()
    book.quota("named", 500)
    book.quota("other", None)
    book.ship("s1", "2025-05-01", 800, licence="named")
    assert book.status("shipment", "s1") == V
    assert "it names licence named, which does not cover it: licence named has 500 of 500 " \
        "left; shipment s1 needs 800" in book.explanation("s1")
    book.ship("s2", "2025-05-02", 800)  # names none: the other licence covers it
    assert "licence other" in book.explanation("s2")


@pytest.mark.parametrize(("licence", "why"), [
    ({"holder": "grab"}, "licence named is held by grab"),
    ({"chips": ("nvidia-h100",)}, "licence named is not for nvidia-h20"),
    ({"countries": ("SG",)}, "licence named is not for CN"),
    ({"valid_from": "2025-06-01"}, "licence named is not valid on 2025-05-01"),
])
def test_licence_quantity_the_explanation_says_why_a_named_licence_does_not_cover(
        licence: dict[str, Any], why: str) -> None:
    book = h20_law()
    book.quota("named", 1000, **licence)
    book.ship("s1", "2025-05-01", 800, licence="named")
    assert book.status("shipment", "s1") == V
    assert why in book.explanation("s1")


def test_licence_quantity_the_explanation_says_a_named_licence_was_revoked():
    book = h20_law()
    book.quota("named", 1000)
    book.revoke("named", "2025-04-15")
    book.ship("s1", "2025-05-01", 800, licence="named")
    assert "licence named was revoked from 2025-04-15" in book.explanation("s1")


def test_licence_quantity_a_shipment_no_regulation_binds_draws_nothing():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("before", "2025-03-01", 800)  # before the requirement: no draw
    book.ship("after", "2025-05-01", 800)
    assert book.status("shipment", "before") is None
    assert book.status("shipment", "after") == C


def test_licence_quantity_a_shipment_naming_a_licence_draws_on_it_even_where_no_rule_binds():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("named-early", "2025-03-01", 800, licence="lic")
    book.ship("after", "2025-05-01", 800)
    assert book.status("shipment", "after") == V


def test_licence_quantity_each_shipment_draws_at_most_one_licence_per_authority():
    book = h20_law()
    book.regulation("reg-2", H20_RULE, "2025-04-09")  # a second rule of the same authority
    book.quota("lic", 1000)
    book.ship("s1", "2025-05-01", 600)
    book.ship("s2", "2025-05-02", 400)
    assert {f.status for f in book.findings("shipment", "s2")} == {C}


def test_licence_quantity_a_correction_of_shipped_on_reorders_the_draws_and_restates():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("s1", "2025-05-01", 800)
    book.ship("s2", "2025-05-02", 800)
    assert (book.status("shipment", "s1"), book.status("shipment", "s2")) == (C, V)
    book.correct_shipment("s1", shipped_on="2025-05-03")
    assert (book.status("shipment", "s1"), book.status("shipment", "s2")) == (V, C)


def test_licence_quantity_a_correction_of_a_quantity_restates_later_shipments():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("s1", "2025-05-01", 800)
    book.ship("s2", "2025-05-02", 200)
    book.ship("s3", "2025-05-03", 100)
    assert book.status("shipment", "s3") == V
    book.correct_shipment("s1", quantity=700)
    assert book.status("shipment", "s3") == C


def test_licence_quantity_caps_a_lease_only_when_its_chip_count_that_day_is_within_it():
    book = h20_law()
    book.regulation("remote", remote_rule(), "2025-01-01")
    book.quota("lease-lic", 1024, holder="alibaba-sg", chips=("nvidia-h100",),
               countries=("MY",))
    book.lease("l1", count=1024, starts_on="2025-04-01", ends_on="2025-12-31")
    book.lease("l2", count=1024, starts_on="2025-04-01", ends_on="2025-12-31")
    book.amend_lease("l1", "2025-07-01", chip_count=2048)
    assert book.spans("lease", "l1") == [("remote", "2025-04-01", "2025-07-01", C),
                                         ("remote", "2025-07-01", "2026-01-01", V)]
    # No draw-down for leases: the second lease is covered too.
    assert book.spans("lease", "l2") == [("remote", "2025-04-01", "2026-01-01", C)]


def test_licence_quantity_a_shipment_touches_every_shipment_of_its_consignee_holding_quantities():
    book = h20_law()
    book.quota("lic", 1000)
    book.ship("s1", "2025-05-01")
    book.ship("s2", "2025-05-02")
    book.shipment("other", consignee="alibaba-sg")
    touched = book.world.touched_by("shipment", "s2")
    assert touched == {SubjectRef("shipment", "s1"), SubjectRef("shipment", "s2")}
    # A correction moving s2 to another consignee still touches the shipments it left.
    book.correct_shipment("s2", consignee_firm_id="alibaba-sg")
    assert SubjectRef("shipment", "s1") in book.world.touched_by("shipment", "s2")


def test_licence_quantity_without_quantities_a_shipment_touches_only_itself():
    book = h20_law()
    book.quota("lic", None)
    book.ship("s1", "2025-05-01")
    book.ship("s2", "2025-05-02")
    assert book.world.touched_by("shipment", "s2") == {SubjectRef("shipment", "s2")}


def test_licence_quantity_a_licence_touches_the_shipments_that_name_it_whoever_holds_it():
    book = h20_law()
    book.quota("lic", 1000, holder="grab")
    book.ship("s1", "2025-05-01", licence="lic")
    assert SubjectRef("shipment", "s1") in book.world.touched_by("licence", "lic")


# Ownership --------------------------------------------------------------------------------------


def firm_body(firm_id: str, owners: list[tuple[str, float]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": firm_id, "name": firm_id.title(), "hq_country": "CN"}
    if owners is not None:
        body["owners"] = [{"firm_id": f, "share": s} for f, s in owners]
    return body


@pytest.fixture
def ledger() -> Ledger:
    ledger = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    ledger.commit(ledger.stage([create("firm", firm_body(f)) for f in ("a", "b", "c")]))
    return ledger


def owners_refused(ledger: Ledger, *appends: Append) -> tuple[Any, ...]:
    with pytest.raises(InvalidRecordError) as refused:
        ledger.stage(appends)
    return refused.value.problems[0].loc


@pytest.mark.parametrize("owners", [
    [("a", 0.0)], [("a", -0.1)], [("a", 1.5)], [("a", 0.6), ("b", 0.5)], [("a", 0.3), ("a", 0.3)],
])
def test_ownership_shares_are_in_0_1_sum_to_at_most_1_and_name_each_owner_once(owners):
    body = firm_body("d", owners)
    with pytest.raises(ValidationError) as refused:
        KINDS["firm"].bodies[Role.CREATE].model_validate_json(json.dumps(body))
    assert refused.value.errors()[0]["loc"][0] == "owners"


def test_ownership_shares_summing_exactly_to_1_are_accepted(ledger: Ledger):
    ledger.stage([create("firm", firm_body("d", [("a", 0.1), ("b", 0.2), ("c", 0.7)]))])


def test_ownership_owners_must_exist(ledger: Ledger):
    loc = owners_refused(ledger, create("firm", firm_body("d", [("a", 0.5), ("nobody", 0.5)])))
    assert loc == ("owners", 1, "firm_id")


def test_ownership_no_firm_owns_itself_directly(ledger: Ledger):
    assert owners_refused(ledger, change("a", "2025-01-01", [("a", 0.5)])) == ("owners",)


def test_ownership_no_firm_owns_itself_through_other_firms_on_any_day(ledger: Ledger):
    ledger.commit(ledger.stage([change("b", "2025-01-01", [("a", 0.6)]),
                                change("c", "2025-06-01", [("b", 0.6)])]))
    # a owning c from 2025-07-01 closes the loop a <- b <- c <- a from then on.
    assert owners_refused(ledger, change("a", "2025-07-01", [("c", 0.5)])) == ("owners",)
    # by correction too (for all valid time)
    assert owners_refused(ledger, correct("a", [("c", 0.5)])) == ("owners",)


def test_ownership_a_loop_on_no_single_day_is_no_self_ownership(ledger: Ledger):
    # b owns a only in 2024; a owns b only from 2025: never both on one day.
    ledger.commit(ledger.stage([change("a", "2024-01-01", [("b", 0.5)]),
                                change("a", "2025-01-01", [])]))
    ledger.commit(ledger.stage([change("b", "2025-01-01", [("a", 0.5)])]))


def test_ownership_is_effective_dated_and_a_change_replaces_the_whole_list(ledger: Ledger):
    ledger.commit(ledger.stage([create("firm", firm_body("d", [("a", 0.3), ("b", 0.3)])),
                                change("d", "2025-06-01", [("c", 0.6)])]))
    state = ledger.get_record("firm", "d").state
    assert owners_on(state, D("2025-05-31")) == {"a": Decimal("0.3"), "b": Decimal("0.3")}
    assert owners_on(state, D("2025-06-01")) == {"c": Decimal("0.6")}


def test_ownership_a_correction_naming_owners_fixes_them_for_all_valid_time(ledger: Ledger):
    ledger.commit(ledger.stage([create("firm", firm_body("d", [("a", 0.3)])),
                                correct("d", [("b", 0.4)])]))
    state = ledger.get_record("firm", "d").state
    assert owners_on(state, D("2000-01-01")) == {"b": Decimal("0.4")}


def test_ownership_parent_firm_id_implies_no_share():
    book = law()
    state = book.world.get("firm", "alibaba-sg")
    assert state.facts_on(D("2025-01-01"))["parent_firm_id"] == "alibaba"
    assert owners_on(state, D("2025-01-01")) == {}


def test_ownership_a_change_touches_the_subjects_of_every_firm_it_owns_directly_or_not():
    book = law()
    book.firm("parent-co", "CN")
    book.firm("mid-co", "SG")
    book._create("firm", "leaf-co", name="Leaf", hq_country="MY",
                 owners=[{"firm_id": "mid-co", "share": 0.6}])
    book.change_firm("mid-co", "2025-01-01", owners=[{"firm_id": "parent-co", "share": 1.0}])
    book.shipment("s-leaf", consignee="leaf-co")
    book.shipment("s-other", consignee="grab")
    touched = book.world.touched_by("firm", "parent-co")
    assert SubjectRef("shipment", "s-leaf") in touched
    assert SubjectRef("shipment", "s-other") not in touched


def create(kind: str, body: dict[str, Any]) -> Append:
    return Append(kind, Role.CREATE, KINDS[kind].bodies[Role.CREATE].model_validate_json(
        json.dumps(body)))


def change(firm_id: str, on: str, owners: list[tuple[str, float]]) -> Append:
    body = {"effective_from": on, "owners": [{"firm_id": f, "share": s} for f, s in owners]}
    return Append("firm", Role.CHANGE, KINDS["firm"].bodies[Role.CHANGE].model_validate_json(
        json.dumps(body)), firm_id)


def correct(firm_id: str, owners: list[tuple[str, float]]) -> Append:
    body = {"owners": [{"firm_id": f, "share": s} for f, s in owners]}
    return Append("firm", Role.CORRECT, KINDS["firm"].bodies[Role.CORRECT].model_validate_json(
        json.dumps(body)), firm_id)


# restricted_party -------------------------------------------------------------------------------


def entity_list(parties: list[str], **params: Any) -> dict[str, Any]:
    return {"kind": "restricted_party", "parties": parties, "licence_authority": "US-BIS",
            **params}


def owned(book: Law, firm_id: str, owners: list[tuple[str, float]], hq: str = "SG") -> None:
    book._create("firm", firm_id, name=firm_id.title(), hq_country=hq,
                 owners=[{"firm_id": f, "share": s} for f, s in owners])


def group() -> Law:
    """huawei (listed), huawei-cloud wholly owned by it, orchid 60% owned by huawei-cloud:
    the invented subsidiary of the demo's story."""
    book = law()
    book.firm("huawei", "CN")
    owned(book, "huawei-cloud", [("huawei", 1.0)], hq="CN")
    owned(book, "orchid", [("huawei-cloud", 0.6)])
    return book


def h100_to(book: Law, shipment_id: str, consignee: str, on: str = "2025-10-15",
            **fields: Any) -> None:
    book.ship(shipment_id, on, chip_model="nvidia-h100", consignee_firm_id=consignee,
              to_country="SG", **fields)


def test_restricted_party_a_listed_consignee_needs_a_licence_and_the_explanation_says_listed():
    book = group()
    book.regulation("el", entity_list(["huawei"]), "2019-05-16")
    h100_to(book, "s1", "huawei")
    [found] = book.findings("shipment", "s1")
    assert found.status == V
    assert "for huawei, restricted as listed," in found.explanation


def test_restricted_party_without_affiliates_min_share_owned_firms_are_not_restricted():
    book = group()
    book.regulation("el", entity_list(["huawei"]), "2019-05-16")
    h100_to(book, "s1", "orchid")
    assert book.findings("shipment", "s1") == []


def test_restricted_party_affiliates_to_a_fixed_point_explanation_names_the_ownership_path():
    book = group()
    book.regulation("el", entity_list(["huawei"], affiliates_min_share=0.5), "2025-09-29")
    h100_to(book, "s1", "orchid")
    assert "restricted as 60% owned by listed huawei through huawei-cloud" in \
        book.explanation("s1")


def test_restricted_party_affiliate_shares_of_restricted_owners_are_summed():
    book = group()
    book.firm("zte", "CN")
    owned(book, "joint", [("huawei", 0.3), ("zte", 0.2), ("grab", 0.5)])
    book.regulation("el", entity_list(["huawei", "zte"], affiliates_min_share=0.5),
                    "2025-09-29")
    h100_to(book, "s1", "joint")
    assert "restricted as 50% owned by restricted firms (30% by listed huawei; 20% by listed " \
        "zte)" in book.explanation("s1")


def test_restricted_party_below_the_share_is_not_restricted():
    book = group()
    owned(book, "minority", [("huawei", 0.49)])
    book.regulation("el", entity_list(["huawei"], affiliates_min_share=0.5), "2025-09-29")
    h100_to(book, "s1", "minority")
    assert book.findings("shipment", "s1") == []


def test_restricted_party_ownership_as_it_stood_on_the_day_judged():
    book = group()
    book.change_firm("orchid", "2025-12-01", owners=[{"firm_id": "huawei-cloud", "share": 0.4}])
    book.regulation("el", entity_list(["huawei"], affiliates_min_share=0.5), "2025-09-29")
    h100_to(book, "s-before", "orchid", on="2025-11-30")
    h100_to(book, "s-after", "orchid", on="2025-12-01")
    assert book.status("shipment", "s-before") == V
    assert book.status("shipment", "s-after") is None


def test_restricted_party_listings_and_removals_are_amendments_of_parties():
    book = group()
    book.regulation("el", entity_list([]), "2019-01-01")
    book.amend_regulation("el", "2019-05-16", entity_list(["huawei"]))
    book.amend_regulation("el", "2024-01-01", entity_list([]))
    for n, on in enumerate(("2019-05-15", "2019-05-16", "2024-01-01")):
        h100_to(book, f"s{n}", "huawei", on=on)
    assert [book.status("shipment", f"s{n}") for n in range(3)] == [None, V, None]


def test_restricted_party_only_chips_the_selector_picks():
    book = group()
    book.regulation("el", entity_list(["huawei"], chips={"models": ["nvidia-h100"]}),
                    "2019-05-16")
    book.ship("h20", "2025-10-15", consignee_firm_id="huawei")
    h100_to(book, "h100", "huawei")
    assert (book.status("shipment", "h20"), book.status("shipment", "h100")) == (None, V)


def test_restricted_party_a_licence_held_by_the_consignee_covers_with_draw_down():
    book = group()
    book.regulation("el", entity_list(["huawei"]), "2019-05-16")
    book.quota("el-lic", 1000, holder="huawei", chips=("nvidia-h100",), countries=("SG",))
    h100_to(book, "s1", "huawei", on="2025-10-01")
    h100_to(book, "s2", "huawei", on="2025-10-02")
    assert (book.status("shipment", "s1"), book.status("shipment", "s2")) == (C, V)


def test_restricted_party_applies_to_leases_of_restricted_lessees_on_each_day():
    book = group()
    book.regulation("el", entity_list(["huawei"], affiliates_min_share=0.5), "2025-09-29")
    book.lease("l1", firm="orchid", starts_on="2025-09-01", ends_on="2025-12-31")
    book.change_firm("orchid", "2025-11-01", owners=[])
    assert book.spans("lease", "l1") == [("el", "2025-09-29", "2025-11-01", V)]
    assert "Lease l1: orchid, restricted as 60% owned by listed huawei through huawei-cloud" \
        in book.findings("lease", "l1")[0].explanation


def test_restricted_party_applies_to_narrows_the_subjects():
    book = group()
    book.regulation("el", entity_list(["huawei"], applies_to=["leases"]), "2019-05-16")
    h100_to(book, "s1", "huawei")
    book.lease("l1", firm="huawei", starts_on="2025-09-01", ends_on="2025-09-30")
    assert book.findings("shipment", "s1") == []
    assert [s[3] for s in book.spans("lease", "l1")] == [V]


def test_restricted_party_the_suspended_affiliates_rule_restricts_only_outside_the_suspension():
    book = group()
    book.regulation("el", entity_list(["huawei"]), "2019-05-16")
    book.regulation("affiliates", entity_list(["huawei"], affiliates_min_share=0.5),
                    "2025-09-29")
    book.suspend("affiliates", "2025-11-10", until="2026-11-09")
    h100_to(book, "oct", "orchid", on="2025-10-15")
    h100_to(book, "dec", "orchid", on="2025-12-15")
    h100_to(book, "listed-dec", "huawei", on="2025-12-15")
    assert book.status("shipment", "oct") == V
    assert book.findings("shipment", "dec") == []
    assert {f.regulation_id for f in book.findings("shipment", "listed-dec")} == {"el"}


def test_restricted_party_listed_parties_must_be_known_firms_when_the_rule_is_appended(
        ledger: Ledger):
    body = {"id": "el", "authority": "US-BIS", "title": "Entity List", "citation": "15 CFR 744",
            "effective_from": "2019-05-16", "rule": entity_list(["a", "nobody"])}
    assert owners_refused(ledger, create("regulation", body)) == ("rule", "parties", 1)


def test_restricted_party_an_ownership_change_above_a_lessee_cuts_its_findings():
    book = group()
    book.regulation("el", entity_list(["huawei"], affiliates_min_share=0.5), "2025-09-29")
    book.lease("l1", firm="orchid", starts_on="2025-09-01", ends_on="2025-12-31")
    book.change_firm("huawei-cloud", "2025-11-01", owners=[{"firm_id": "huawei", "share": 0.4}])
    assert book.spans("lease", "l1") == [("el", "2025-09-29", "2025-11-01", V)]


# An activity whose subject_count is not recorded is taken to meet any min_subjects --------------


def test_a_count_changed_to_unrecorded_meets_min_subjects_from_that_day():
    book = law()
    book.regulation("pipl", local_rule(min_subjects=10000), "2025-01-01", authority="CN-CAC")
    book.activity("a1", count=500)
    book.change_activity("a1", "2025-08-01", subject_count=None)
    assert book.spans("processing_activity", "a1") == [("pipl", "2025-08-01", None, V)]
