"""Ownership shares between firms (domain.md, "Ownership"): who owns a firm on a day, and the
write-side rule that no firm owns itself, directly or through other firms, on any day."""

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from domain.errors import FieldProblem, InvalidRecordError
from domain.records import RecordState

FirmLookup = Callable[[str], RecordState | None]


def owners_on(firm: RecordState, day: date) -> dict[str, Decimal]:
    """The firm's owners and their shares as they stood on `day` (exact decimals: shares
    are summed against thresholds)."""
    owners = firm.facts_on(day).get("owners") or ()
    return {o["firm_id"]: Decimal(repr(o["share"])) for o in owners}


def owners_ever(firm: RecordState) -> set[str]:
    """Every firm named as an owner of this one in any version of it."""
    lists = [firm.original.get("owners")] + [c.fields.get("owners") for c in firm.changes]
    return {o["firm_id"] for owners in lists for o in owners or ()}


def owned_above(firm: RecordState, lookup: FirmLookup) -> list[RecordState]:
    """The firm and every firm that owns it, directly or not, on some day."""
    found: dict[str, RecordState] = {firm.record_id: firm}
    frontier = [firm]
    while frontier:
        for owner_id in owners_ever(frontier.pop()):
            owner = lookup(owner_id)
            if owner is not None and owner_id not in found:
                found[owner_id] = owner
                frontier.append(owner)
    return list(found.values())


def check_no_self_ownership(firm: RecordState, lookup: FirmLookup) -> None:
    """Refuse (422 on `owners`) a firm state that owns itself on any day: checked on each day
    any firm above it changes, and before every change."""
    above = owned_above(firm, lookup)
    days = {date.min, *(d for f in above for d in f.change_dates())}
    states = {f.record_id: f for f in above}
    for day in sorted(days):
        path = _path_to_itself(firm.record_id, states, day)
        if path:
            when = "as first recorded" if day == date.min else f"from {day.isoformat()}"
            raise InvalidRecordError([FieldProblem(
                ("owners",), f"firm {firm.record_id} would own itself {when}: "
                f"{' owned by '.join(path)}", "ownership_cycle")])


def _path_to_itself(firm_id: str, states: dict[str, RecordState], day: date) -> list[str]:
    """A chain of owners from the firm back to itself on `day`, or [] if there is none."""
    stack: list[tuple[str, list[str]]] = [(firm_id, [firm_id])]
    seen: set[str] = set()
    while stack:
        current, path = stack.pop()
        state = states.get(current)
        for owner in owners_on(state, day) if state is not None else ():
            if owner == firm_id:
                return [*path, owner]
            if owner not in seen:
                seen.add(owner)
                stack.append((owner, [*path, owner]))
    return []
