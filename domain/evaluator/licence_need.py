"""Which authorities' licences a shipment needs on its shipped_on: the scope tests of the rule
kinds that judge shipments, shared by their verdicts and by the draw-down (a shipment draws
on a licence of an authority whose licence a regulation in force that day requires of it)."""

from datetime import date
from typing import Any

from domain.evaluator.affiliates import Restriction, restriction
from domain.evaluator.in_force import rules_for
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import as_date
from domain.records import RecordState
from domain.rules import ExportLicenceRule, RestrictedPartyRule


def export_scope(scratch: Scratch, facts: dict[str, Any], rule: ExportLicenceRule,
                 day: date) -> RecordState | None:
    """The shipment's chip model, when an export_licence rule reaches the shipment: chip,
    destination (to_country, or an HQ up the consignee's chain) and origin country."""
    chip_id = facts["chip_model"]
    chip = scratch.matching_chip(rule.chips, chip_id, day)
    if chip is None or not _in_destination_scope(scratch, facts, rule, day):
        return None
    if rule.from_countries is not None and facts["from_country"] not in rule.from_countries:
        return None
    return chip


def _in_destination_scope(scratch: Scratch, facts: dict[str, Any], rule: ExportLicenceRule,
                          day: date) -> bool:
    """To one of the rule's countries, or to a consignee with a firm up its chain
    headquartered in one; a rule naming neither looks everywhere."""
    if rule.to_countries is None and rule.consignee_hq_countries is None:
        return True
    chain = scratch.hq_chain(facts["consignee_firm_id"], day)
    return facts["to_country"] in (rule.to_countries or ()) or any(
        hq in (rule.consignee_hq_countries or ()) for _, hq in chain)


def restricted_party_scope(scratch: Scratch, facts: dict[str, Any], rule: RestrictedPartyRule,
                           day: date, field: str) -> tuple[RecordState, Restriction] | None:
    """The chip and the restriction, when the rule reaches a subject with these facts."""
    restricted = restriction(scratch.world, rule, facts[field], day)
    if restricted is None:
        return None
    chip = scratch.matching_chip(rule.chips, facts["chip_model"], day)
    return (chip, restricted) if chip is not None else None


def needed_authorities(scratch: Scratch, shipment: RecordState) -> set[str]:
    """The authorities whose licence a regulation in force on shipped_on requires of it."""
    day = as_date(shipment.original["shipped_on"])
    facts = scratch.facts_on(shipment, day)
    needed = set()
    for _, pieces in rules_for(scratch.world, "shipment"):
        for piece in pieces:
            authority = _required(scratch, facts, piece.rule, day) if piece.covers(day) \
                else None
            if authority is not None:
                needed.add(authority)
    return needed


def _required(scratch: Scratch, facts: dict[str, Any], rule: Any, day: date) -> str | None:
    """The authority whose licence the rule requires of the shipment that day, if any."""
    if isinstance(rule, ExportLicenceRule) and export_scope(scratch, facts, rule, day):
        return rule.licence_authority
    if isinstance(rule, RestrictedPartyRule) and "shipments" in rule.applies_to and \
            restricted_party_scope(scratch, facts, rule, day, "consignee_firm_id"):
        return rule.licence_authority
    return None
