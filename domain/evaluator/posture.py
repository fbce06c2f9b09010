"""A firm's posture on a day: the worst status among the findings that hold."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from domain.evaluator.findings import Finding, worst
from domain.types import Status


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
