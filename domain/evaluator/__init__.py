"""The pure evaluator: facts and regulations as known -> findings over valid time.

Everything that decides a verdict is in this package. Projections, replays, what-ifs and tests
all call `findings_for`; no SQL decides anything. For each subject and each regulation whose
rule kind evaluates it, the valid-time axis is cut at every date where a relevant fact can
change (the subject's dates and changes, the rule's in-force dates and amendments, the firm
chain's and the data centre's changes, the licences' validity, due diligence), the verdict is
computed once per piece, and equal neighbouring pieces are merged into one finding.

Where things are: `judging` (findings_for: screen, cut, judge, merge), `rule_kinds` (JUDGES:
the one table from a rule kind to how it is judged), one module per rule kind (`shipments`,
`leases`, `activities`), `in_force` (when a regulation binds), `shared` (chips, firm chains,
licences), and the answers built from findings: `posture`, `residency`, `timeline`, `diffs`.
"""

from domain.evaluator.activities import processed_in
from domain.evaluator.diffs import FindingsDiff, diff_findings
from domain.evaluator.findings import Finding, Verdict, worst
from domain.evaluator.in_force import RulePiece, in_force, rules_for
from domain.evaluator.judging import _judge_piece, _merge, findings_for, screen
from domain.evaluator.posture import Posture, posture_on
from domain.evaluator.residency import (
    Processing,
    ProcessingPiece,
    processing_pieces,
    residency_from,
    residency_on,
)
from domain.evaluator.rule_kinds import JUDGES, RuleKind
from domain.evaluator.scratch import Scratch as _Scratch
from domain.evaluator.shared import chip_matches, covering_licence, hq_chain
from domain.evaluator.timeline import StatusChange, status_changes, timeline

__all__ = [
    "JUDGES",
    "Finding",
    "FindingsDiff",
    "Posture",
    "Processing",
    "ProcessingPiece",
    "RuleKind",
    "RulePiece",
    "StatusChange",
    "Verdict",
    "_Scratch",
    "_judge_piece",
    "_merge",
    "chip_matches",
    "covering_licence",
    "diff_findings",
    "findings_for",
    "hq_chain",
    "in_force",
    "posture_on",
    "processed_in",
    "processing_pieces",
    "residency_from",
    "residency_on",
    "rules_for",
    "screen",
    "status_changes",
    "timeline",
    "worst",
]
