"""The pure evaluator: facts and regulations as known -> findings over valid time.

Everything that decides a verdict is here. Projections, replays, what-ifs and tests all call
`findings_for`; no SQL decides anything. For each subject and each regulation whose rule kind
evaluates it, the valid-time axis is cut at every date where a relevant fact can change (the
subject's dates and changes, the rule's in-force dates and amendments, the firm chain's and the
data centre's changes, the licences' validity, due diligence), the verdict is computed once per
piece, and equal neighbouring pieces are merged into one finding.
"""

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from domain.dates import day_after
from domain.records import RecordState
from domain.rules import (
    ChipSelector,
    DataLocalisationRule,
    ExportLicenceRule,
    RemoteComputeAccessRule,
    Rule,
)
from domain.types import Status
from domain.world import FIRM_FIELD, SUBJECT_KIND_OF_RULE, SubjectRef, World

_RULE = TypeAdapter(Rule)


@dataclass(frozen=True, order=True, slots=True)
class Finding:
    firm_id: str
    subject_type: str
    subject_id: str
    regulation_id: str
    valid_from: date
    valid_to: date | None  # exclusive; None: open
    status: Status
    citation: str
    explanation: str
    evidence: tuple[int, ...]

    def holds_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subject_type, self.subject_id, self.regulation_id)


@dataclass(frozen=True)
class Verdict:
    status: Status
    explanation: str
    evidence: frozenset[int]


Judge = Callable[[date], Verdict | None]


# rules in force ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RulePiece:
    """A regulation's parameters over [start, end)."""

    start: date
    end: date | None
    rule: ExportLicenceRule | RemoteComputeAccessRule | DataLocalisationRule


def in_force(regulation: RecordState) -> list[RulePiece]:
    """When the rule binds: from max(effective_from, compliance_from) until its rescission,
    with each amendment's parameters from its effective_from."""
    facts = regulation.original
    start = max(_d(facts["effective_from"]), _d(facts.get("compliance_from") or
                                                 facts["effective_from"]))
    end = regulation.ended_from
    if end is not None and end <= start:
        return []
    cuts = sorted({start, *(d for d in regulation.change_dates() if d > start
                           and (end is None or d < end))})
    pieces = []
    for i, cut in enumerate(cuts):
        piece_end = cuts[i + 1] if i + 1 < len(cuts) else end
        pieces.append(RulePiece(cut, piece_end, _parse_rule(regulation.facts_on(cut)["rule"])))
    return pieces


def _parse_rule(data: dict[str, Any]) -> ExportLicenceRule | RemoteComputeAccessRule | \
        DataLocalisationRule:
    return _parse_rule_json(_freeze(data))


@lru_cache(maxsize=4096)
def _parse_rule_json(frozen: str) -> ExportLicenceRule | RemoteComputeAccessRule | \
        DataLocalisationRule:
    return _RULE.validate_json(frozen)


def _freeze(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


# the shared tests ------------------------------------------------------------------------------


def chip_matches(selector: ChipSelector, chip_id: str, chip: dict[str, Any] | None) -> bool:
    if chip is None:
        return False
    if selector.origin_countries is not None and chip.get("origin_country") not in \
            selector.origin_countries:
        return False
    if selector.models is None and selector.any_of is None:
        return True
    if selector.models and chip_id in selector.models:
        return True
    return any(
        (c.min_tpp is None or chip["tpp"] >= c.min_tpp)
        and (c.min_performance_density is None
             or chip["performance_density"] >= c.min_performance_density)
        for c in selector.any_of or ()
    )


def hq_chain(world: World, firm_id: str, day: date) -> list[tuple[str, str]]:
    """(firm, hq_country) for the firm and every firm above it, each as it stood on `day`."""
    chain: list[tuple[str, str]] = []
    seen: set[str] = set()
    current: str | None = firm_id
    while current and current not in seen:
        seen.add(current)
        firm = world.get("firm", current)
        if firm is None:
            break
        facts = firm.facts_on(day)
        chain.append((current, facts["hq_country"]))
        current = facts.get("parent_firm_id")
    return chain


def _chain_firms(world: World, firm_id: str) -> list[RecordState]:
    """Every firm that is or has ever been above `firm_id` (for cut dates and evidence)."""
    found: list[RecordState] = []
    frontier, seen = [firm_id], set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        firm = world.get("firm", current)
        if firm is not None:
            found.append(firm)
            parents = [firm.original.get("parent_firm_id")]
            parents += [c.fields.get("parent_firm_id") for c in firm.changes]
            frontier += [p for p in parents if p]
    return found


def covering_licence(world: World, authority: str, holder: str, chip_id: str, country: str,
                     day: date) -> tuple[RecordState | None, list[RecordState]]:
    """The first valid licence that covers the case, and every licence that would but for
    its dates (consulted: they are evidence either way)."""
    consulted = [
        lic for lic in world.licences_held_by(holder)
        if lic.original.get("authority") == authority
        and chip_id in lic.original.get("chip_models", ())
        and country in lic.original.get("destination_countries", ())
    ]
    valid = [lic for lic in consulted if lic.holds_on(day)]
    return (valid[0] if valid else None), consulted


def _licence_cuts(licences: Iterable[RecordState]) -> set[date]:
    cuts: set[date] = set()
    for lic in licences:
        cuts.add(_d(lic.original["valid_from"]))
        if lic.original.get("valid_to"):
            cuts.add(day_after(_d(lic.original["valid_to"])))
        if lic.ended_from:
            cuts.add(lic.ended_from)
    return cuts


def _positions(*states: RecordState | None) -> frozenset[int]:
    return frozenset(p for s in states if s is not None for p in s.positions)


# the subjects ----------------------------------------------------------------------------------


def rules_for(world: World, subject_kind: str) -> list[tuple[RecordState, list[RulePiece]]]:
    """The regulations whose rule (in some version) judges this kind of subject, with their
    in-force pieces; computed once per state of the world's regulations."""
    key = ("rules_for", subject_kind, world.regulation_stamp)
    if key not in world.memo:
        world.memo = {k: v for k, v in world.memo.items()
                      if not (k[0] == "rules_for" and k[2] != world.regulation_stamp)}
        chosen = []
        for regulation in sorted(world.of_kind("regulation"), key=lambda r: r.record_id):
            pieces = [p for p in in_force(regulation)
                      if SUBJECT_KIND_OF_RULE[p.rule.kind] == subject_kind]
            if pieces:
                chosen.append((regulation, pieces))
        world.memo[key] = chosen
    rules: list[tuple[RecordState, list[RulePiece]]] = world.memo[key]
    return rules


class _Scratch:
    """What judging one subject under every regulation would otherwise compute again for
    each regulation: the subject's cut dates, and records' facts, spans and firm chains on
    each cut day. Lives for one `findings_for` call, so it never outlives the world's state."""

    __slots__ = ("chains", "cuts", "evidence", "facts", "firms", "holds", "world")

    def __init__(self, world: World) -> None:
        self.world = world
        self.cuts: list[date] | None = None  # sorted
        self.facts: dict[tuple[int, date], dict[str, Any]] = {}
        self.holds: dict[tuple[int, date], bool] = {}
        self.chains: dict[tuple[str, date], list[tuple[str, str]]] = {}
        self.firms: dict[str, list[RecordState]] = {}
        self.evidence: dict[frozenset[int], tuple[int, ...]] = {}

    def sorted_evidence(self, evidence: frozenset[int]) -> tuple[int, ...]:
        """Neighbouring pieces of one subject mostly cite the same records: sort once."""
        if evidence not in self.evidence:
            self.evidence[evidence] = tuple(sorted(evidence))
        return self.evidence[evidence]

    def facts_on(self, state: RecordState, day: date) -> dict[str, Any]:
        key = (id(state), day)
        if key not in self.facts:
            self.facts[key] = state.facts_on(day)
        return self.facts[key]

    def holds_on(self, state: RecordState, day: date) -> bool:
        key = (id(state), day)
        if key not in self.holds:
            self.holds[key] = state.holds_on(day)
        return self.holds[key]

    def hq_chain(self, firm_id: str, day: date) -> list[tuple[str, str]]:
        if (firm_id, day) not in self.chains:
            self.chains[(firm_id, day)] = hq_chain(self.world, firm_id, day)
        return self.chains[(firm_id, day)]

    def chain_firms(self, firm_id: str) -> list[RecordState]:
        if firm_id not in self.firms:
            self.firms[firm_id] = _chain_firms(self.world, firm_id)
        return self.firms[firm_id]


def findings_for(world: World, subject: SubjectRef) -> list[Finding]:
    """Every finding of one subject under every regulation, over all valid time."""
    state = world.get(subject.kind, subject.record_id)
    if state is None or not state.original:
        return []
    firm_id = state.original.get(FIRM_FIELD[subject.kind]) or ""
    findings: list[Finding] = []
    scratch = _Scratch(world)
    may_bind = screen(world, state)
    for regulation, pieces in rules_for(world, subject.kind):
        for piece in pieces:
            if may_bind(piece):
                findings += _judge_piece(scratch, state, firm_id, regulation, piece)
    return _merge(findings)


def screen(world: World, subject: RecordState) -> Callable[[RulePiece], bool]:
    """Whether a rule piece can give the subject a verdict on any day. False only when no
    value the subject (or a record it names) has in any version can satisfy the rule: most
    subjects are outside most rules, and this spares judging them day by day."""
    if subject.kind == "lease":
        reach = _lease_reach(world, subject)
        return lambda piece: reach.may_bind(piece.rule)  # type: ignore[arg-type]
    if subject.kind == "processing_activity":
        return _activity_screen(subject)
    shipped_on = _d(subject.original["shipped_on"])
    return lambda piece: piece.start <= shipped_on and (piece.end is None
                                                        or shipped_on < piece.end)


def _judge_piece(scratch: _Scratch, subject: RecordState, firm_id: str,
                 regulation: RecordState, piece: RulePiece) -> list[Finding]:
    world = scratch.world
    citation = str(regulation.original.get("citation", ""))
    reg_id = regulation.record_id
    rule = piece.rule
    if isinstance(rule, ExportLicenceRule):
        shipped_on = _d(subject.original["shipped_on"])
        if not (piece.start <= shipped_on and (piece.end is None or shipped_on < piece.end)):
            return []
        verdict = _judge_shipment(scratch, subject, regulation, rule, shipped_on)
        if verdict is None:
            return []
        return [_finding(subject, firm_id, reg_id, citation, shipped_on, None, verdict,
                         scratch)]
    judge: Judge
    if isinstance(rule, RemoteComputeAccessRule):
        if scratch.cuts is None:
            scratch.cuts = sorted(_lease_cuts(world, subject, firm_id))
        judge = lambda day: _judge_lease(scratch, subject, regulation, rule, day)  # noqa: E731
    else:
        if scratch.cuts is None:
            scratch.cuts = sorted(_activity_cuts(world, subject, firm_id))
        judge = lambda day: _judge_activity(scratch, subject, regulation, rule, day)  # noqa: E731
    # The subject's cuts are sorted once; each piece takes those inside it, in order.
    ordered = [piece.start] + [c for c in scratch.cuts
                               if c > piece.start and (piece.end is None or c < piece.end)]
    findings = []
    for i, start in enumerate(ordered):
        end = ordered[i + 1] if i + 1 < len(ordered) else piece.end
        verdict = judge(start)
        if verdict is not None:
            findings.append(_finding(subject, firm_id, reg_id, citation, start, end, verdict,
                                     scratch))
    return findings


def _finding(subject: RecordState, firm_id: str, reg_id: str, citation: str, start: date,
             end: date | None, verdict: Verdict, scratch: _Scratch) -> Finding:
    return Finding(firm_id, subject.kind, subject.record_id, reg_id, start, end,
                   verdict.status, citation, verdict.explanation,
                   scratch.sorted_evidence(verdict.evidence))


def _merge(findings: list[Finding]) -> list[Finding]:
    """Join a finding to the one before it when they meet and say the same thing."""
    merged: list[Finding] = []
    for f in sorted(findings, key=lambda f: (f.key, f.valid_from)):
        last = merged[-1] if merged else None
        if last is not None and last.key == f.key and last.valid_to == f.valid_from \
                and (last.status, last.explanation) == (f.status, f.explanation):
            merged[-1] = Finding(last.firm_id, last.subject_type, last.subject_id,
                                 last.regulation_id, last.valid_from, f.valid_to, last.status,
                                 last.citation, last.explanation,
                                 tuple(sorted(set(last.evidence) | set(f.evidence))))
        else:
            merged.append(f)
    return merged


# export_licence: a shipment, judged on its shipped_on -------------------------------------------


def _judge_shipment(scratch: _Scratch, shipment: RecordState, regulation: RecordState,
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
    evidence = _positions(shipment, regulation, chip, *consulted,
                          *scratch.chain_firms(consignee))
    what = (f"Shipment {shipment.record_id} of {facts['quantity']} {chip_id} to "
            f"{facts['to_country']} on {day}")
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{what} is covered by {rule.licence_authority} "
                       f"licence {licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{what} needs a {rule.licence_authority} licence under "
                   f"{regulation.record_id}; none held by {consignee} covers it.", evidence)


# remote_compute_access: a lease, on each day it runs -------------------------------------------


def _span_cuts(state: RecordState) -> set[date]:
    cuts = {_d(state.original["starts_on"]), *state.change_dates()}
    ends = [state.original.get("ends_on")] + [c.fields.get("ends_on") for c in state.changes]
    cuts |= {day_after(_d(e)) for e in ends if e}
    if state.ended_from:
        cuts.add(state.ended_from)
    return cuts


def _lease_cuts(world: World, lease: RecordState, firm_id: str) -> set[date]:
    cuts = _span_cuts(lease)
    for firm in _chain_firms(world, firm_id):
        cuts |= set(firm.change_dates())
    dc = world.get("data_centre", lease.original.get("data_centre_id"))
    if dc is not None:
        cuts |= set(dc.change_dates())
    cuts |= _licence_cuts(world.licences_held_by(firm_id))
    if lease.diligence_from():
        cuts.add(lease.diligence_from())  # type: ignore[arg-type]
    return cuts


@dataclass(frozen=True, slots=True)
class _LeaseReach:
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


def _lease_reach(world: World, lease: RecordState) -> _LeaseReach:
    versions = _versions(lease)
    firms = {f for v in versions if (f := v.get("firm_id"))}
    hq = {v.get("hq_country") for firm in firms for above in _chain_firms(world, firm)
          for v in _versions(above)}
    dcs = (world.get("data_centre", v.get("data_centre_id")) for v in versions)
    countries = {c.get("country") for dc in dcs if dc is not None for c in _versions(dc)}
    chips = []
    for chip_id in {v.get("chip_model") for v in versions}:
        chip = world.get("chip_model", chip_id)
        if chip is not None and chip_id is not None:
            chips += [(chip_id, facts) for facts in _versions(chip)]
    return _LeaseReach(
        frozenset(c for c in hq if c), frozenset(c for c in countries if c), tuple(chips),
        max((v.get("chip_count") or 0 for v in versions), default=0),
        frozenset(p for v in versions for p in v.get("purposes") or ()))


def _versions(state: RecordState) -> list[dict[str, Any]]:
    """The record's facts as they stand before its first change and from each change on:
    every combination of values `facts_on` can return."""
    return [state.original, *(state.facts_on(day) for day in state.change_dates())]


def _judge_lease(scratch: _Scratch, lease: RecordState, regulation: RecordState,
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
    evidence = _positions(lease, regulation, chip, dc, *scratch.chain_firms(firm_id))
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
    licence, consulted = covering_licence(world, authority, firm_id, chip_id, country, day)
    evidence |= _positions(*consulted)
    if licence is not None:
        return Verdict(Status.COMPLIANT, f"{what}, covered by {authority} licence "
                       f"{licence.record_id} under {regulation.record_id}.", evidence)
    return Verdict(Status.VIOLATION, f"{what}; {regulation.record_id} needs a {authority} "
                   "licence and none covers it.", evidence)


# data_localisation: a processing activity, on each day it runs ----------------------------------


def _activity_cuts(world: World, activity: RecordState, firm_id: str) -> set[date]:
    cuts = _span_cuts(activity)
    dcs = [activity.original.get("data_centre_id")]
    dcs += [c.fields.get("data_centre_id") for c in activity.changes]
    for dc_id in {d for d in dcs if d}:
        dc = world.get("data_centre", dc_id)
        if dc is not None:
            cuts |= set(dc.change_dates())
    return cuts


def _activity_screen(activity: RecordState) -> Callable[[RulePiece], bool]:
    versions = _versions(activity)
    countries = {c for v in versions for c in v.get("data_subject_countries") or ()}
    sensitive = any(v.get("sensitive") for v in versions)
    counts = [v.get("subject_count") for v in versions]
    # An unknown count cannot prove the activity is under a threshold (see _judge_activity).
    most: int | None = None if None in counts else max(c for c in counts if c is not None)

    def may_bind(piece: RulePiece) -> bool:
        rule = piece.rule
        assert isinstance(rule, DataLocalisationRule)
        return not (countries.isdisjoint(rule.data_subject_countries)
                    or (rule.sensitive_only and not sensitive)
                    or (rule.min_subjects is not None and most is not None
                        and most < rule.min_subjects))

    return may_bind


def processed_in(world: World, facts: dict[str, Any], day: date) -> tuple[str | None,
                                                                          RecordState | None]:
    if facts.get("data_centre_id"):
        dc = world.get("data_centre", facts["data_centre_id"])
        return (dc.facts_on(day)["country"] if dc else None), dc
    return facts.get("location_country"), None


def _judge_activity(scratch: _Scratch, activity: RecordState, regulation: RecordState,
                    rule: DataLocalisationRule, day: date) -> Verdict | None:
    if not scratch.holds_on(activity, day):
        return None
    facts = scratch.facts_on(activity, day)
    where, dc = processed_in(scratch.world, facts, day)
    named = [c for c in facts["data_subject_countries"]
             if c in rule.data_subject_countries and c != where]
    if not named or where is None:
        return None
    if rule.sensitive_only and not facts["sensitive"]:
        return None
    count = facts.get("subject_count")
    # An unknown count cannot prove the activity is under the threshold.
    if rule.min_subjects is not None and count is not None and count < rule.min_subjects:
        return None
    evidence = _positions(activity, regulation, dc)
    kind = "sensitive personal data" if facts["sensitive"] else "personal data"
    what = (f"Activity {activity.record_id} of {facts['firm_id']} processes "
            f"{'/'.join(named)} residents' {kind} in {where}")
    mechanism = facts.get("transfer_mechanism")
    if mechanism in rule.accepted_mechanisms:
        return Verdict(Status.COMPLIANT, f"{what} under a {mechanism}, which "
                       f"{regulation.record_id} accepts.", evidence)
    held = f"its {mechanism} is not accepted" if mechanism else "no transfer mechanism is recorded"
    return Verdict(Status.VIOLATION, f"{what}; {held} under {regulation.record_id}.", evidence)


def _d(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


# posture and residency ---------------------------------------------------------------------------


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.COMPLIANT)


@dataclass(frozen=True)
class Posture:
    firm_id: str
    day: date
    status: Status
    findings: list[Finding]


def posture_on(firm_id: str, findings: Iterable[Finding], day: date) -> Posture:
    holding = sorted((f for f in findings if f.firm_id == firm_id and f.holds_on(day)),
                     key=lambda f: f.key)
    return Posture(firm_id, day, worst(f.status for f in holding), holding)


@dataclass(frozen=True)
class Processing:
    data_subject_country: str
    processed_in: str | None
    activity_id: str
    status: Status


@dataclass(frozen=True, order=True, slots=True)
class ProcessingPiece:
    """Where one country's personal data was processed by an activity, over [from, to)."""

    firm_id: str
    activity_id: str
    data_subject_country: str
    valid_from: date
    valid_to: date | None
    processed_in: str | None

    def holds_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


def processing_pieces(world: World, activity: RecordState) -> list[ProcessingPiece]:
    """Where the activity processed each data-subject country's data, over valid time."""
    if not activity.original:
        return []
    firm_id = activity.original.get("firm_id") or ""
    ordered = sorted(_activity_cuts(world, activity, firm_id))
    pieces: list[ProcessingPiece] = []
    for i, start in enumerate(ordered):
        end = ordered[i + 1] if i + 1 < len(ordered) else None
        if not activity.holds_on(start):
            continue
        facts = activity.facts_on(start)
        where, _ = processed_in(world, facts, start)
        for country in facts["data_subject_countries"]:
            piece = ProcessingPiece(firm_id, activity.record_id, country, start, end, where)
            pieces = _extend(pieces, piece)
    return sorted(pieces)


def _extend(pieces: list[ProcessingPiece], piece: ProcessingPiece) -> list[ProcessingPiece]:
    for i, p in enumerate(pieces):
        if (p.data_subject_country, p.processed_in, p.valid_to) == \
                (piece.data_subject_country, piece.processed_in, piece.valid_from):
            pieces[i] = ProcessingPiece(p.firm_id, p.activity_id, p.data_subject_country,
                                        p.valid_from, piece.valid_to, p.processed_in)
            return pieces
    return [*pieces, piece]


def residency_on(world: World, firm_id: str, findings: Iterable[Finding], day: date
                 ) -> tuple[Status, list[Finding], list[Processing]]:
    """The worst data_localisation status, and where each country's data was processed."""
    activities = (world.get(ref.kind, ref.record_id) for ref in world.subjects_of_firm(firm_id)
                  if ref.kind == "processing_activity")
    pieces = [p for a in activities if a is not None for p in processing_pieces(world, a)]
    return residency_from(firm_id, findings, pieces, day)


def residency_from(firm_id: str, findings: Iterable[Finding],
                   pieces: Iterable[ProcessingPiece], day: date
                   ) -> tuple[Status, list[Finding], list[Processing]]:
    """Residency from findings and processing pieces, wherever they were read from."""
    local = [f for f in findings if f.firm_id == firm_id and f.holds_on(day)
             and f.subject_type == "processing_activity"]
    rows = [
        Processing(p.data_subject_country, p.processed_in, p.activity_id,
                   worst(f.status for f in local if f.subject_id == p.activity_id))
        for p in sorted(pieces, key=lambda p: (p.activity_id, p.data_subject_country))
        if p.firm_id == firm_id and p.holds_on(day)
    ]
    return worst(f.status for f in local), sorted(local, key=lambda f: f.key), rows


def timeline(firm_id: str, findings: Iterable[Finding], start: date, end: date
             ) -> list[tuple[date, date, Status]]:
    """The posture as consecutive [from, to) pieces between start and end (exclusive)."""
    own = [f for f in findings if f.firm_id == firm_id]
    cuts = {start, end}
    for f in own:
        cuts |= {d for d in (f.valid_from, f.valid_to) if d is not None and start < d < end}
    ordered = sorted(cuts)
    # A sweep over the findings' starts and ends, counting the findings of each status that
    # hold: the posture on a day is the worst status with a count (posture_on, without
    # filtering every finding again for every cut).
    edges = sorted([(f.valid_from, 1, f.status) for f in own]
                   + [(f.valid_to, -1, f.status) for f in own if f.valid_to is not None],
                   key=lambda e: (e[0], e[1]))
    holding: dict[Status, int] = {}
    next_edge = 0
    pieces: list[tuple[date, date, Status]] = []
    for i in range(len(ordered) - 1):
        while next_edge < len(edges) and edges[next_edge][0] <= ordered[i]:
            _, step, status = edges[next_edge]
            holding[status] = holding.get(status, 0) + step
            next_edge += 1
        status = worst(s for s, n in holding.items() if n > 0)
        if pieces and pieces[-1][2] == status:
            pieces[-1] = (pieces[-1][0], ordered[i + 1], status)
        else:
            pieces.append((ordered[i], ordered[i + 1], status))
    return pieces


@dataclass(frozen=True)
class FindingsDiff:
    added: list[Finding]
    removed: list[Finding]
    changed: list[tuple[Finding, Finding]]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_findings(before: Iterable[Finding], after: Iterable[Finding]) -> FindingsDiff:
    """Findings keyed by (subject, regulation): which appeared, which went, which changed."""
    old = {f.key: f for f in before}
    new = {f.key: f for f in after}
    return FindingsDiff(
        added=[new[k] for k in sorted(new.keys() - old.keys())],
        removed=[old[k] for k in sorted(old.keys() - new.keys())],
        changed=[(old[k], new[k]) for k in sorted(old.keys() & new.keys()) if old[k] != new[k]],
    )


StatusChange = tuple[date, date, Status, Status]


def status_changes(old: list[tuple[date, date, Status]], new: list[tuple[date, date, Status]]
                   ) -> list[StatusChange]:
    """Where two timelines over the same span disagree: [from, to), status before, after."""
    cuts = sorted({d for a, b, _ in old + new for d in (a, b)})
    changes: list[StatusChange] = []
    for i in range(len(cuts) - 1):
        day = cuts[i]
        before = next((s for a, b, s in old if a <= day < b), Status.COMPLIANT)
        after = next((s for a, b, s in new if a <= day < b), Status.COMPLIANT)
        if before == after:
            continue
        if changes and changes[-1][1] == day and changes[-1][2:] == (before, after):
            changes[-1] = (changes[-1][0], cuts[i + 1], before, after)
        else:
            changes.append((day, cuts[i + 1], before, after))
    return changes
