"""export_licence: a shipment, judged on its shipped_on."""

from collections.abc import Callable
from datetime import date
from typing import Any

from domain.evaluator.findings import Verdict
from domain.evaluator.in_force import RulePiece, Span
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import as_date, covering_licence, positions
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
    chip = scratch.matching_chip(rule.chips, facts["chip_model"], day)
    if chip is None or not _in_destination_scope(scratch, facts, rule, day):
        return None
    if rule.from_countries is not None and facts["from_country"] not in rule.from_countries:
        return None
    consignee = facts["consignee_firm_id"]
    licence, consulted = covering_licence(scratch.world, rule.licence_authority, consignee,
                                          facts["chip_model"], facts["to_country"], day)
    evidence = positions(shipment, regulation, chip, *consulted,
                         *scratch.chain_firms(consignee))
    return _licence_verdict(shipment, facts, regulation, rule, licence, evidence, day)


def _in_destination_scope(scratch: Scratch, facts: dict[str, Any], rule: ExportLicenceRule,
                          day: date) -> bool:
    """Whether the shipment goes where the rule looks: to one of its countries, or to a
    consignee with a firm up its chain headquartered in one. A rule naming neither looks
    everywhere."""
    if rule.to_countries is None and rule.consignee_hq_countries is None:
        return True
    chain = scratch.hq_chain(facts["consignee_firm_id"], day)
    return facts["to_country"] in (rule.to_countries or ()) or any(
        hq in (rule.consignee_hq_countries or ()) for _, hq in chain)


def _licence_verdict(shipment: RecordState, facts: dict[str, Any], regulation: RecordState,
                     rule: ExportLicenceRule, licence: RecordState | None,
                     evidence: frozenset[int], day: date) -> Verdict:
    what = (f"Shipment {shipment.record_id} of {facts['quantity']} {facts['chip_model']} to "
            f"{facts['to_country']} on {day}")
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{what} is covered by {rule.licence_authority} "
                       f"licence {licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{what} needs a {rule.licence_authority} licence under "
                   f"{regulation.record_id}; none held by {facts['consignee_firm_id']} covers "
                   "it.", evidence)
