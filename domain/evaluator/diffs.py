"""Two sets of findings compared by (subject, regulation): for replays and what-ifs."""

from collections.abc import Iterable
from dataclasses import dataclass

from domain.evaluator.findings import Finding


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
