"""A firm's posture over a span of valid time, and where two such timelines disagree."""

from collections.abc import Iterable
from datetime import date

from domain.evaluator.findings import Finding, worst
from domain.types import Status

StatusChange = tuple[date, date, Status, Status]


def timeline(firm_id: str, findings: Iterable[Finding], start: date, end: date
             ) -> list[tuple[date, date, Status]]:
    """The posture as consecutive [from, to) pieces between start and end (exclusive)."""
    own = [f for f in findings if f.firm_id == firm_id]
    ordered = _cuts_between(own, start, end)
    # A sweep over the findings' starts and ends, counting the findings of each status that
    # hold: the posture on a day is the worst status with a count (posture_on, without
    # filtering every finding again for every cut).
    edges = _edges(own)
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


def _cuts_between(findings: list[Finding], start: date, end: date) -> list[date]:
    """start, end, and every date strictly between them where a finding starts or ends."""
    cuts = {start, end}
    for f in findings:
        cuts |= {d for d in (f.valid_from, f.valid_to) if d is not None and start < d < end}
    return sorted(cuts)


def _edges(findings: list[Finding]) -> list[tuple[date, int, Status]]:
    """(day, +1 or -1, status) where each finding starts and ends; ends first on a day."""
    return sorted([(f.valid_from, 1, f.status) for f in findings]
                  + [(f.valid_to, -1, f.status) for f in findings if f.valid_to is not None],
                  key=lambda e: (e[0], e[1]))


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
