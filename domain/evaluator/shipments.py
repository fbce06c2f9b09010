"""export_licence: a shipment, judged on its shipped_on, covered by what it draws."""

from collections.abc import Callable
from datetime import date
from typing import Any

from domain.evaluator.drawdown import Draw, draw_for
from domain.evaluator.findings import Verdict
from domain.evaluator.in_force import RulePiece, Span
from domain.evaluator.licence_need import export_scope
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import as_date, positions
from domain.records import RecordState
from domain.rules import ExportLicenceRule
from domain.types import Status
from domain.world import World


def shipment_screen(world: World, shipment: RecordState) -> Callable[[RulePiece], bool]:
    shipped_on = as_date(shipment.original["shipped_on"])
    return lambda piece: piece.covers(shipped_on)


def shipment_days(scratch: Scratch, shipment: RecordState, firm_id: str,
                  piece: RulePiece) -> list[Span]:
    """A shipment is judged once, on its shipped_on, and the finding stays open from then."""
    shipped_on = as_date(shipment.original["shipped_on"])
    return [(shipped_on, None)] if piece.covers(shipped_on) else []


def judge_shipment(scratch: Scratch, shipment: RecordState, regulation: RecordState,
                   rule: ExportLicenceRule, day: date) -> Verdict | None:
    facts = scratch.facts_on(shipment, day)
    chip = export_scope(scratch, facts, rule, day)
    if chip is None:
        return None
    consignee = facts["consignee_firm_id"]
    draw = draw_for(scratch, shipment, rule.licence_authority)
    evidence = positions(shipment, regulation, chip, *scratch.chain_firms(consignee))
    return licence_verdict(shipment, facts, regulation, rule.licence_authority, draw,
                           evidence | draw.evidence, day)


def licence_verdict(shipment: RecordState, facts: dict[str, Any], regulation: RecordState,
                    authority: str, draw: Draw, evidence: frozenset[int], day: date,
                    because: str = "") -> Verdict:
    """Covered by the licence it draws on, or a violation saying why none covers it."""
    what = (f"Shipment {shipment.record_id} of {facts['quantity']} {facts['chip_model']} to "
            f"{facts['to_country']} on {day}{because}")
    if draw.licence is not None:
        left = "" if draw.left is None else \
            f", which has {draw.left:,} of {int(draw.licence.original['quantity']):,} left"
        return Verdict(Status.COMPLIANT, f"{what} is covered by {authority} licence "
                       f"{draw.licence.record_id} under {regulation.record_id}{left}.", evidence)
    if draw.named:
        why = (f"it names licence {shipment.original.get('licence_id')}, which does not cover "
               f"it: {draw.why_not}")
    else:
        why = f"none held by {facts['consignee_firm_id']} covers it" + \
            (f" ({draw.why_not})" if draw.why_not else "")
    return Verdict(Status.VIOLATION, f"{what} needs a {authority} licence under "
                   f"{regulation.record_id}; {why}.", evidence)
