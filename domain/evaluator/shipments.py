"""export_licence: a shipment, judged on its shipped_on."""

from datetime import date

from domain.evaluator.findings import Verdict
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import chip_matches, covering_licence, positions
from domain.records import RecordState
from domain.rules import ExportLicenceRule
from domain.types import Status


def judge_shipment(scratch: Scratch, shipment: RecordState, regulation: RecordState,
                   rule: ExportLicenceRule, day: date) -> Verdict | None:
    world = scratch.world
    facts = scratch.facts_on(shipment, day)
    chip_id = facts["chip_model"]
    chip = world.get("chip_model", chip_id)
    if not chip_matches(rule.chips, chip_id, scratch.facts_on(chip, day) if chip else None):
        return None
    consignee = facts["consignee_firm_id"]
    chain = scratch.hq_chain(consignee, day)
    if rule.to_countries is None and rule.consignee_hq_countries is None:
        destination = True
    else:
        destination = facts["to_country"] in (rule.to_countries or ()) or any(
            hq in (rule.consignee_hq_countries or ()) for _, hq in chain)
    if not destination:
        return None
    if rule.from_countries is not None and facts["from_country"] not in rule.from_countries:
        return None
    licence, consulted = covering_licence(world, rule.licence_authority, consignee, chip_id,
                                          facts["to_country"], day)
    evidence = positions(shipment, regulation, chip, *consulted,
                         *scratch.chain_firms(consignee))
    what = (f"Shipment {shipment.record_id} of {facts['quantity']} {chip_id} to "
            f"{facts['to_country']} on {day}")
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{what} is covered by {rule.licence_authority} "
                       f"licence {licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{what} needs a {rule.licence_authority} licence under "
                   f"{regulation.record_id}; none held by {consignee} covers it.", evidence)
