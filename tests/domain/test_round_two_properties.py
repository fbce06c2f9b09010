"""Laws of round two's evaluator (issue 16), on random worlds built by hand (no database):
draw-down never covers more chips than a licence's quantity and does not depend on the order
events were recorded (only on shipped_on and ShipmentRecorded positions); restriction is
monotone in ownership shares; a suspension covering every day equals no regulation."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.kinds import Role
from domain.types import FIRST_DAY, Status
from tests.domain.test_evaluator import H20_RULE, remote_rule
from tests.domain.test_round_two_law import Law, entity_list, h20_law, law

LAWS = settings(max_examples=60, deadline=None)
DAYS = st.sampled_from(["2025-05-01", "2025-05-02", "2025-06-01", "2025-07-01", "2025-08-01"])
LICENCE = st.fixed_dictionaries({
    "quantity": st.sampled_from([None, 500, 1000, 1600]),
    "valid_to": st.sampled_from([None, "2025-06-15", "2025-12-31"]),
})
SHIPMENT = st.fixed_dictionaries({
    "shipped_on": DAYS, "quantity": st.sampled_from([100, 400, 800]),
    "licence": st.sampled_from([None, None, "lic-0", "lic-1"]),
})


def _drawn(book: Law) -> dict[str, str | None]:
    """Each shipment's finding: the licence it drew on, or None when not covered."""
    drawn = {}
    for ref in book.world.subjects():
        [found] = book.findings(ref.kind, ref.record_id)
        drawn[ref.record_id] = found.explanation.split("licence ")[1].split(" ")[0] \
            if found.status == Status.COMPLIANT else None
    return drawn


def _record(licences: list[dict[str, Any]], shipments: list[dict[str, Any]],
            order: list[int]) -> Law:
    """Licences first, then the shipments as created (in list order), then a correction of
    each shipment's quantity back to itself in `order`: later events in any order."""
    book = h20_law()
    for n, licence in enumerate(licences):
        book.quota(f"lic-{n}", licence["quantity"], valid_to=licence["valid_to"])
    for n, shipment in enumerate(shipments):
        book.ship(f"s{n}", shipment["shipped_on"], shipment["quantity"],
                  licence=shipment["licence"])
    for n in order:
        book.correct_shipment(f"s{n}", quantity=shipments[n]["quantity"])
    return book


@LAWS
@given(st.lists(LICENCE, min_size=1, max_size=2), st.lists(SHIPMENT, min_size=1, max_size=6),
       st.data())
def test_draw_down_never_covers_more_than_a_licences_quantity_whatever_the_recording_order(
        licences: list[dict[str, Any]], shipments: list[dict[str, Any]], data: st.DataObject):
    order = data.draw(st.permutations(range(len(shipments))))
    book = _record(licences, shipments, order)
    drawn = _drawn(book)
    for n, licence in enumerate(licences):
        if licence["quantity"] is not None:
            covered = sum(s["quantity"] for i, s in enumerate(shipments)
                          if drawn[f"s{i}"] == f"lic-{n}")
            assert covered <= licence["quantity"]
    again = _record(licences, shipments, list(reversed(order)))
    assert _drawn(again) == drawn


SHARES = st.sampled_from([0.1, 0.25, 0.3, 0.5, 0.6, 1.0])


@LAWS
@given(st.lists(SHARES, min_size=3, max_size=3), st.integers(0, 2), SHARES,
       st.sampled_from([0.25, 0.5]))
def test_restriction_is_monotone_in_ownership_shares(shares: list[float], raised: int,
                                                      more: float, min_share: float):
    """Raising any one share never lifts a restriction: listed a owns b, b and a own c (each
    at most half of it, so that raising one share leaves the others as they were)."""
    def restricted(values: list[float]) -> set[str]:
        book = law()
        book.firm("a", "CN")
        book._create("firm", "b", name="B", hq_country="SG",
                     owners=[{"firm_id": "a", "share": values[0]}])
        book._create("firm", "c", name="C", hq_country="SG",
                     owners=[{"firm_id": "b", "share": values[1] / 2},
                             {"firm_id": "a", "share": values[2] / 2}])
        book.regulation("el", entity_list(["a"], affiliates_min_share=min_share),
                        "2025-01-01")
        for firm in ("b", "c"):
            book.ship(f"to-{firm}", "2025-05-01", chip_model="nvidia-h100",
                      consignee_firm_id=firm, to_country="SG")
        return {f.subject_id for f in book.all_findings()}

    higher = list(shares)
    higher[raised] = max(shares[raised], more)
    assert restricted(shares) <= restricted(higher)


@LAWS
@given(st.sampled_from([H20_RULE, remote_rule(), entity_list(["alibaba", "alibaba-sg"])]),
       st.sampled_from(["2019-01-01", "2025-01-01", "2025-04-09"]), st.booleans())
def test_a_suspension_covering_every_day_equals_no_regulation(rule: dict[str, Any],
                                                               enacted: str, earlier: bool):
    def world(suspended: bool) -> list[Any]:
        book = law()
        book.regulation("other", H20_RULE, "2025-04-09")
        book.lease("l1")
        book.shipment("s1")
        book.shipment("s2", consignee="alibaba-sg", chip="nvidia-h100", to="SG")
        if suspended:  # recorded last: the other records keep their positions
            book.regulation("reg", rule, enacted)
            start = FIRST_DAY.isoformat() if earlier else enacted  # open-ended: every day on
            book._log("regulation", "reg", Role.SUSPEND, {"effective_from": start})
        return book.all_findings()

    assert world(True) == world(False)
