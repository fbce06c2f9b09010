"""What the evaluator answers: a finding over [valid_from, valid_to), and the verdict of one day."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from domain.types import Status


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


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: s.rank, default=Status.COMPLIANT)
