"""One subject under every regulation: screen, cut valid time, judge each piece, merge."""

from collections.abc import Callable

from domain.evaluator.findings import Finding
from domain.evaluator.in_force import RulePiece, rules_for
from domain.evaluator.rule_kinds import JUDGES
from domain.evaluator.scratch import Scratch
from domain.records import RecordState
from domain.world import FIRM_FIELD, SUBJECT_KINDS_OF_RULE, SubjectRef, World


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
    screens = {name: kind.screen(world, subject) for name, kind in JUDGES.items()
               if subject.kind in SUBJECT_KINDS_OF_RULE[name]}
    return lambda piece: screens[piece.rule.kind](piece)


def _judge_piece(scratch: Scratch, subject: RecordState, firm_id: str,
                 regulation: RecordState, piece: RulePiece) -> list[Finding]:
    """The findings of one subject under one piece of a regulation: a verdict per span."""
    kind = JUDGES[piece.rule.kind]
    citation = str(regulation.original.get("citation", ""))
    findings = []
    for start, end in kind.days(scratch, subject, firm_id, piece):
        verdict = kind.judge(scratch, subject, regulation, piece.rule, start)
        if verdict is not None:
            findings.append(Finding(firm_id, subject.kind, subject.record_id,
                                    regulation.record_id, start, end, verdict.status, citation,
                                    verdict.explanation,
                                    scratch.sorted_evidence(verdict.evidence)))
    return findings


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
