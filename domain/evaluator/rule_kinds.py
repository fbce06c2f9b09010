"""How each rule kind is judged: the one table the evaluator dispatches on.

A rule kind is a rule model in domain/rules.py (named in its RULE_KINDS, with the kind of
subjects it judges in domain.world.SUBJECT_KINDS_OF_RULE), one module here, and one entry in
JUDGES: how to screen a subject, on which spans of a rule piece to judge it, and the verdict
of one day.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Generic, TypeVar

from domain.evaluator.activities import activity_days, activity_screen, judge_activity
from domain.evaluator.findings import Verdict
from domain.evaluator.in_force import AnyRule, RulePiece, Span
from domain.evaluator.leases import judge_lease, lease_days, lease_screen
from domain.evaluator.restricted import judge_restricted, restricted_days, restricted_screen
from domain.evaluator.scratch import Scratch
from domain.evaluator.shipments import judge_shipment, shipment_days, shipment_screen
from domain.records import RecordState
from domain.world import World

R = TypeVar("R", bound=AnyRule)
Screen = Callable[[RulePiece], bool]


@dataclass(frozen=True)
class RuleKind(Generic[R]):
    # Whether a piece of a rule of this kind can give the subject a verdict on any day; built
    # once per subject, from every version of it and of the records it names.
    screen: Callable[[World, RecordState], Screen]
    # The [from, to) spans of a rule piece on each of which the subject has one verdict
    # (subject, firm id, piece).
    days: Callable[[Scratch, RecordState, str, RulePiece], list[Span]]
    # The verdict on the first day of a span (subject, regulation, rule, day); None: the
    # rule does not reach the subject that day.
    judge: Callable[[Scratch, RecordState, RecordState, R, date], Verdict | None]


JUDGES: dict[str, RuleKind[Any]] = {
    "export_licence": RuleKind(shipment_screen, shipment_days, judge_shipment),
    "remote_compute_access": RuleKind(lease_screen, lease_days, judge_lease),
    "data_localisation": RuleKind(activity_screen, activity_days, judge_activity),
    "restricted_party": RuleKind(restricted_screen, restricted_days, judge_restricted),
}
