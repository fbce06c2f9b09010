"""remote_compute_access: a lease, on each day it runs."""

from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.evaluator.findings import Verdict
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import (
    chain_firms,
    chip_matches,
    covering_licence,
    licence_cuts,
    positions,
    span_cuts,
    versions,
)
from domain.records import RecordState
from domain.rules import RemoteComputeAccessRule
from domain.types import Status
from domain.world import World


def lease_cuts(world: World, lease: RecordState, firm_id: str) -> set[date]:
    cuts = span_cuts(lease)
    for firm in chain_firms(world, firm_id):
        cuts |= set(firm.change_dates())
    dc = world.get("data_centre", lease.original.get("data_centre_id"))
    if dc is not None:
        cuts |= set(dc.change_dates())
    cuts |= licence_cuts(world.licences_held_by(firm_id))
    if lease.diligence_from():
        cuts.add(lease.diligence_from())  # type: ignore[arg-type]
    return cuts


@dataclass(frozen=True, slots=True)
class LeaseReach:
    """Every value a lease's verdict can read, on any day, in any version of the lease and of
    the records it names. A rule none of them can satisfy yields no verdict on any day, so
    its pieces need no judging: most leases are outside most rules (another lessee country,
    another chip), and this turns tens of judged days into one set test per rule."""

    hq_countries: frozenset[str]
    dc_countries: frozenset[str]
    chips: tuple[tuple[str, dict[str, Any]], ...]  # (chip id, the chip's facts) per version
    most_chips: int
    purposes: frozenset[str]

    def may_bind(self, rule: RemoteComputeAccessRule) -> bool:
        if self.hq_countries.isdisjoint(rule.lessee_hq_countries):
            return False
        countries = self.dc_countries.difference(rule.exempt_dc_countries)
        if rule.dc_countries is not None:
            countries = countries.intersection(rule.dc_countries)
        if not countries or self.most_chips < rule.min_chips:
            return False
        if rule.purposes is not None and self.purposes.isdisjoint(rule.purposes):
            return False
        return any(chip_matches(rule.chips, chip_id, facts) for chip_id, facts in self.chips)


def lease_reach(world: World, lease: RecordState) -> LeaseReach:
    lease_versions = versions(lease)
    firms = {f for v in lease_versions if (f := v.get("firm_id"))}
    hq = {v.get("hq_country") for firm in firms for above in chain_firms(world, firm)
          for v in versions(above)}
    dcs = (world.get("data_centre", v.get("data_centre_id")) for v in lease_versions)
    countries = {c.get("country") for dc in dcs if dc is not None for c in versions(dc)}
    chips = []
    for chip_id in {v.get("chip_model") for v in lease_versions}:
        chip = world.get("chip_model", chip_id)
        if chip is not None and chip_id is not None:
            chips += [(chip_id, facts) for facts in versions(chip)]
    return LeaseReach(
        frozenset(c for c in hq if c), frozenset(c for c in countries if c), tuple(chips),
        max((v.get("chip_count") or 0 for v in lease_versions), default=0),
        frozenset(p for v in lease_versions for p in v.get("purposes") or ()))


def judge_lease(scratch: Scratch, lease: RecordState, regulation: RecordState,
                rule: RemoteComputeAccessRule, day: date) -> Verdict | None:
    world = scratch.world
    if not scratch.holds_on(lease, day):
        return None
    facts = scratch.facts_on(lease, day)
    firm_id = facts["firm_id"]
    chain = scratch.hq_chain(firm_id, day)
    flagged = [(f, hq) for f, hq in chain if hq in rule.lessee_hq_countries]
    if not flagged:
        return None
    dc = world.get("data_centre", facts["data_centre_id"])
    country = scratch.facts_on(dc, day)["country"] if dc else None
    if country is None or country in rule.exempt_dc_countries:
        return None
    if rule.dc_countries is not None and country not in rule.dc_countries:
        return None
    chip_id = facts["chip_model"]
    chip = world.get("chip_model", chip_id)
    if not chip_matches(rule.chips, chip_id, scratch.facts_on(chip, day) if chip else None):
        return None
    if facts["chip_count"] < rule.min_chips:
        return None
    if rule.purposes is not None and not set(facts["purposes"]) & set(rule.purposes):
        return None
    evidence = positions(lease, regulation, chip, dc, *scratch.chain_firms(firm_id))
    hq_firm, hq = flagged[0]
    who = firm_id if hq_firm == firm_id else f"{firm_id} (parent {hq_firm})"
    what = (f"Lease {lease.record_id}: {who}, headquartered in {hq}, uses "
            f"{facts['chip_count']} {chip_id} in {country}")
    if rule.severity == "attention":
        diligence = lease.diligence_from()
        if diligence is not None and diligence <= day:
            return Verdict(Status.COMPLIANT, f"{what}; due diligence completed on {diligence} "
                           f"answers the red flag of {regulation.record_id}.", evidence)
        return Verdict(Status.ATTENTION, f"{what}; {regulation.record_id} flags this until due "
                       "diligence is recorded.", evidence)
    authority = rule.licence_authority or ""
    licence, consulted = covering_licence(world, authority, firm_id, chip_id, country, day,
                                          facts["chip_count"])
    evidence |= positions(*consulted)
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{what}, covered by {authority} licence "
                       f"{licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{what}; {regulation.record_id} needs a {authority} "
                   "licence and none covers it.", evidence)
