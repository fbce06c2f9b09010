"""One subject under every regulation: screen, cut valid time, judge each piece, merge."""

from collections.abc import Callable
from datetime import date

from domain.evaluator.activities import activity_cuts, activity_screen, judge_activity
from domain.evaluator.findings import Finding, Verdict
from domain.evaluator.in_force import RulePiece, rules_for
from domain.evaluator.leases import judge_lease, lease_cuts, lease_reach
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import as_date
from domain.evaluator.shipments import judge_shipment
from domain.records import RecordState
from domain.rules import ExportLicenceRule, RemoteComputeAccessRule
from domain.world import FIRM_FIELD, SubjectRef, World

Judge = Callable[[date], Verdict | None]


def findings_for(world: World, subject: SubjectRef) -> list[Finding]:
    """Every finding of one subject under every regulation, over all valid time."""
    state = world.get(subject.kind, subject.record_id)
    if state is None or not state.original:
        return []
    firm_id = state.original.get(FIRM_FIELD[subject.kind]) or ""
    findings: list[Finding] = []
    scratch = Scratch(world)
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
        reach = lease_reach(world, subject)
        return lambda piece: reach.may_bind(piece.rule)  # type: ignore[arg-type]
    if subject.kind == "processing_activity":
        return activity_screen(subject)
    shipped_on = as_date(subject.original["shipped_on"])
    return lambda piece: piece.covers(shipped_on)


def _judge_piece(scratch: Scratch, subject: RecordState, firm_id: str,
                 regulation: RecordState, piece: RulePiece) -> list[Finding]:
    world = scratch.world
    citation = str(regulation.original.get("citation", ""))
    reg_id = regulation.record_id
    rule = piece.rule
    if isinstance(rule, ExportLicenceRule):
        shipped_on = as_date(subject.original["shipped_on"])
        if not piece.covers(shipped_on):
            return []
        verdict = judge_shipment(scratch, subject, regulation, rule, shipped_on)
        if verdict is None:
            return []
        return [_finding(subject, firm_id, reg_id, citation, shipped_on, None, verdict,
                         scratch)]
    judge: Judge
    if isinstance(rule, RemoteComputeAccessRule):
        if scratch.cuts is None:
            scratch.cuts = sorted(lease_cuts(world, subject, firm_id))
        judge = lambda day: judge_lease(scratch, subject, regulation, rule, day)  # noqa: E731
    else:
        if scratch.cuts is None:
            scratch.cuts = sorted(activity_cuts(world, subject, firm_id))
        judge = lambda day: judge_activity(scratch, subject, regulation, rule, day)  # noqa: E731
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
             end: date | None, verdict: Verdict, scratch: Scratch) -> Finding:
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
