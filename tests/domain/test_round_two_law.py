"""domain.md, "Licence quantities, restricted parties, ownership, suspensions": each rule of
the section pinned by a test that names it, on worlds built by hand (no database)."""

from datetime import date
from typing import Any

import pytest

from domain.errors import InvalidRecordError
from domain.evaluator import in_force
from domain.kinds import Role
from domain.records import LoggedEvent, check_event
from domain.types import Status
from tests.unit.test_evaluator import H20_RULE, Book, base, remote_rule

C, V = Status.COMPLIANT, Status.VIOLATION


class Law(Book):
    """The hand-built world, with round two's appends."""

    def suspend(self, reg_id: str, on: str, until: str | None = None) -> int:
        body: dict[str, Any] = {"effective_from": on, "reason": "trade deal"}
        if until is not None:
            body["until"] = until
        return self._log("regulation", reg_id, Role.SUSPEND, body)

    def reinstate(self, reg_id: str, on: str) -> int:
        return self._log("regulation", reg_id, Role.REINSTATE, {"effective_from": on})


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
