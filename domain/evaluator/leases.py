"""remote_compute_access: a lease, on each day it runs."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.evaluator.findings import Verdict
from domain.evaluator.in_force import RulePiece, Span
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


def lease_screen(world: World, lease: RecordState) -> Callable[[RulePiece], bool]:
    reach = lease_reach(world, lease)
    return lambda piece: reach.may_bind(piece.rule)  # type: ignore[arg-type]


def lease_days(scratch: Scratch, lease: RecordState, firm_id: str,
               piece: RulePiece) -> list[Span]:
    """A lease is judged on each piece of the days it runs, cut where any fact it reads can
    change."""
    return piece.spans(scratch.sorted_cuts(lease_cuts, lease, firm_id))


@dataclass(frozen=True, slots=True)
class _LeaseCase:
    """What a rule reads of a lease it reaches on one day."""

    lease: RecordState
    facts: dict[str, Any]
    hq_firm: str  # the first firm up the chain headquartered where the rule looks
    hq: str
    dc: RecordState | None
    country: str
    chip: RecordState

    @property
    def firm_id(self) -> str:
        return str(self.facts["firm_id"])

    @property
    def chip_id(self) -> str:
        return str(self.facts["chip_model"])

    @property
    def what(self) -> str:
        firm_id = self.firm_id
        who = firm_id if self.hq_firm == firm_id else f"{firm_id} (parent {self.hq_firm})"
        return (f"Lease {self.lease.record_id}: {who}, headquartered in {self.hq}, uses "
                f"{self.facts['chip_count']} {self.chip_id} in {self.country}")


def judge_lease(scratch: Scratch, lease: RecordState, regulation: RecordState,
                rule: RemoteComputeAccessRule, day: date) -> Verdict | None:
    case = _lease_case(scratch, lease, rule, day)
    if case is None:
        return None
    evidence = positions(lease, regulation, case.chip, case.dc,
                         *scratch.chain_firms(case.firm_id))
    if rule.severity == "attention":
        return _red_flag(case, regulation, evidence, day)
    return _licence_needed(scratch.world, case, regulation, rule, evidence, day)


def _lease_case(scratch: Scratch, lease: RecordState, rule: RemoteComputeAccessRule,
                day: date) -> _LeaseCase | None:
    """The lease as the rule reads it on `day`, or None when the rule does not reach it."""
    if not scratch.holds_on(lease, day):
        return None
    facts = scratch.facts_on(lease, day)
    flagged = _flagged_lessee(scratch, facts["firm_id"], rule, day)
    if flagged is None:
        return None
    dc = scratch.world.get("data_centre", facts["data_centre_id"])
    country = scratch.facts_on(dc, day)["country"] if dc else None
    if country is None or not _in_dc_scope(country, rule):
        return None
    chip = scratch.matching_chip(rule.chips, facts["chip_model"], day)
    if chip is None or not _in_use_scope(facts, rule):
        return None
    hq_firm, hq = flagged
    return _LeaseCase(lease, facts, hq_firm, hq, dc, country, chip)


def _flagged_lessee(scratch: Scratch, firm_id: str, rule: RemoteComputeAccessRule,
                    day: date) -> tuple[str, str] | None:
    """The first (firm, hq country) up the lessee's chain headquartered where the rule looks."""
    chain = scratch.hq_chain(firm_id, day)
    return next(((f, hq) for f, hq in chain if hq in rule.lessee_hq_countries), None)


def _in_dc_scope(country: str, rule: RemoteComputeAccessRule) -> bool:
    if country in rule.exempt_dc_countries:
        return False
    return rule.dc_countries is None or country in rule.dc_countries


def _in_use_scope(facts: dict[str, Any], rule: RemoteComputeAccessRule) -> bool:
    if facts["chip_count"] < rule.min_chips:
        return False
    return rule.purposes is None or bool(set(facts["purposes"]) & set(rule.purposes))


def _red_flag(case: _LeaseCase, regulation: RecordState, evidence: frozenset[int],
              day: date) -> Verdict:
    """An attention rule flags the lease until due diligence is recorded."""
    diligence = case.lease.diligence_from()
    if diligence is not None and diligence <= day:
        return Verdict(Status.COMPLIANT, f"{case.what}; due diligence completed on {diligence} "
                       f"answers the red flag of {regulation.record_id}.", evidence)
    return Verdict(Status.ATTENTION, f"{case.what}; {regulation.record_id} flags this until "
                   "due diligence is recorded.", evidence)


def _licence_needed(world: World, case: _LeaseCase, regulation: RecordState,
                    rule: RemoteComputeAccessRule, evidence: frozenset[int],
                    day: date) -> Verdict:
    """A violation rule needs a licence from its authority covering the chip and country."""
    authority = rule.licence_authority or ""
    licence, consulted = covering_licence(world, authority, case.firm_id, case.chip_id,
                                          case.country, day, case.facts["chip_count"])
    evidence |= positions(*consulted)
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{case.what}, covered by {authority} licence "
                       f"{licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{case.what}; {regulation.record_id} needs a {authority} "
                   "licence and none covers it.", evidence)
