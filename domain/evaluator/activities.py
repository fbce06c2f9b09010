"""data_localisation: a processing activity, on each day it runs."""

from collections.abc import Callable
from datetime import date
from typing import Any

from domain.evaluator.findings import Verdict
from domain.evaluator.in_force import RulePiece, Span
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import positions, span_cuts, versions
from domain.records import RecordState
from domain.rules import DataLocalisationRule
from domain.types import Status
from domain.world import World


def activity_cuts(world: World, activity: RecordState, firm_id: str) -> set[date]:
    cuts = span_cuts(activity)
    dcs = [activity.original.get("data_centre_id")]
    dcs += [c.fields.get("data_centre_id") for c in activity.changes]
    for dc_id in {d for d in dcs if d}:
        dc = world.get("data_centre", dc_id)
        if dc is not None:
            cuts |= set(dc.change_dates())
    return cuts


def activity_screen(world: World, activity: RecordState) -> Callable[[RulePiece], bool]:
    activity_versions = versions(activity)
    countries = {c for v in activity_versions for c in v.get("data_subject_countries") or ()}
    sensitive = any(v.get("sensitive") for v in activity_versions)
    counts = [v.get("subject_count") for v in activity_versions]
    # An unknown count cannot prove the activity is under a threshold (see judge_activity).
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


def activity_days(scratch: Scratch, activity: RecordState, firm_id: str,
                  piece: RulePiece) -> list[Span]:
    """An activity is judged on each piece of the days it runs, cut where it or its data
    centre changes."""
    return piece.spans(scratch.sorted_cuts(activity_cuts, activity, firm_id))


def judge_activity(scratch: Scratch, activity: RecordState, regulation: RecordState,
                   rule: DataLocalisationRule, day: date) -> Verdict | None:
    if not scratch.holds_on(activity, day):
        return None
    facts = scratch.facts_on(activity, day)
    where, dc = processed_in(scratch.world, facts, day)
    named = [c for c in facts["data_subject_countries"]
             if c in rule.data_subject_countries and c != where]
    if not named or where is None or not _in_data_scope(facts, rule):
        return None
    evidence = positions(activity, regulation, dc)
    return _transfer_verdict(activity, facts, named, where, regulation, rule, evidence)


def _in_data_scope(facts: dict[str, Any], rule: DataLocalisationRule) -> bool:
    if rule.sensitive_only and not facts["sensitive"]:
        return False
    count = facts.get("subject_count")
    # An unknown count cannot prove the activity is under the threshold.
    return rule.min_subjects is None or count is None or count >= rule.min_subjects


def _transfer_verdict(activity: RecordState, facts: dict[str, Any], named: list[str],
                      where: str, regulation: RecordState, rule: DataLocalisationRule,
                      evidence: frozenset[int]) -> Verdict:
    """Data processed outside its residents' country is compliant only under a transfer
    mechanism the rule accepts."""
    kind = "sensitive personal data" if facts["sensitive"] else "personal data"
    what = (f"Activity {activity.record_id} of {facts['firm_id']} processes "
            f"{'/'.join(named)} residents' {kind} in {where}")
    mechanism = facts.get("transfer_mechanism")
    if mechanism in rule.accepted_mechanisms:
        return Verdict(Status.COMPLIANT, f"{what} under a {mechanism}, which "
                       f"{regulation.record_id} accepts.", evidence)
    held = f"its {mechanism} is not accepted" if mechanism else "no transfer mechanism is recorded"
    return Verdict(Status.VIOLATION, f"{what}; {held} under {regulation.record_id}.", evidence)
