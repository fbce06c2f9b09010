"""restricted_party: a shipment to a restricted consignee on its shipped_on (covered as
export_licence covers, draw-down included), or a lease by a restricted lessee on each day it
runs (covered as remote_compute_access with severity violation)."""

from collections.abc import Callable
from datetime import date

from domain.evaluator.affiliates import may_restrict
from domain.evaluator.drawdown import draw_for
from domain.evaluator.findings import Verdict
from domain.evaluator.in_force import RulePiece, Span
from domain.evaluator.leases import lease_cuts
from domain.evaluator.licence_need import restricted_party_scope
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import as_date, covering_licence, positions, versions
from domain.evaluator.shipments import licence_verdict, shipment_days
from domain.ownership import owned_above
from domain.records import RecordState
from domain.rules import RestrictedPartyRule
from domain.types import Status
from domain.world import FIRM_FIELD, World


def restricted_screen(world: World, subject: RecordState) -> Callable[[RulePiece], bool]:
    """Only a firm with a listed party among itself (or, with affiliates, its owners above
    it) can be restricted; a shipment is judged only by a piece covering its shipped_on."""
    field = FIRM_FIELD[subject.kind]
    firms = {f for v in versions(subject) if (f := v.get(field))}
    shipped_on = as_date(subject.original["shipped_on"]) if subject.kind == "shipment" \
        else None

    def may_bind(piece: RulePiece) -> bool:
        rule = piece.rule
        assert isinstance(rule, RestrictedPartyRule)
        if shipped_on is not None and not piece.covers(shipped_on):
            return False
        return may_restrict(world, rule, firms)

    return may_bind


def restricted_days(scratch: Scratch, subject: RecordState, firm_id: str,
                    piece: RulePiece) -> list[Span]:
    if subject.kind == "shipment":
        return shipment_days(scratch, subject, firm_id, piece)
    return piece.spans(scratch.sorted_cuts(restricted_lease_cuts, subject, firm_id))


def restricted_lease_cuts(world: World, lease: RecordState, firm_id: str) -> set[date]:
    """A lease's cuts, and every day the ownership above its lessee changes."""
    cuts = lease_cuts(world, lease, firm_id)
    firm = world.get("firm", firm_id)
    for above in owned_above(firm, lambda f: world.get("firm", f)) if firm else ():
        cuts |= set(above.change_dates())
    return cuts


def judge_restricted(scratch: Scratch, subject: RecordState, regulation: RecordState,
                     rule: RestrictedPartyRule, day: date) -> Verdict | None:
    if subject.kind == "shipment":
        return _judge_shipment(scratch, subject, regulation, rule, day)
    return _judge_lease(scratch, subject, regulation, rule, day)


def _judge_shipment(scratch: Scratch, shipment: RecordState, regulation: RecordState,
                    rule: RestrictedPartyRule, day: date) -> Verdict | None:
    facts = scratch.facts_on(shipment, day)
    scope = restricted_party_scope(scratch, facts, rule, day, "consignee_firm_id")
    if scope is None:
        return None
    chip, restricted = scope
    draw = draw_for(scratch, shipment, rule.licence_authority)
    evidence = positions(shipment, regulation, chip, *restricted.firms) | draw.evidence
    because = f" for {facts['consignee_firm_id']}, restricted as {restricted.why},"
    return licence_verdict(shipment, facts, regulation, rule.licence_authority, draw,
                           evidence, day, because)


def _judge_lease(scratch: Scratch, lease: RecordState, regulation: RecordState,
                 rule: RestrictedPartyRule, day: date) -> Verdict | None:
    if not scratch.holds_on(lease, day):
        return None
    facts = scratch.facts_on(lease, day)
    scope = restricted_party_scope(scratch, facts, rule, day, "firm_id")
    dc = scratch.world.get("data_centre", facts["data_centre_id"])
    if scope is None or dc is None:
        return None
    chip, restricted = scope
    country = scratch.facts_on(dc, day)["country"]
    licence, consulted = covering_licence(scratch.world, rule.licence_authority,
                                          facts["firm_id"], facts["chip_model"], country, day,
                                          facts["chip_count"])
    evidence = positions(lease, regulation, chip, dc, *restricted.firms, *consulted)
    what = (f"Lease {lease.record_id}: {facts['firm_id']}, restricted as {restricted.why}, "
            f"uses {facts['chip_count']} {facts['chip_model']} in {country}")
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{what}, covered by {rule.licence_authority} "
                       f"licence {licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{what}; {regulation.record_id} needs a "
                   f"{rule.licence_authority} licence and none covers it.", evidence)
