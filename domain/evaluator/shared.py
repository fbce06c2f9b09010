"""The tests and cut dates several rule kinds share: chips, firm chains, licences, spans."""

from collections.abc import Iterable
from datetime import date
from typing import Any

from domain.dates import day_after
from domain.records import RecordState
from domain.rules import ChipSelector
from domain.world import World


def as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def chip_matches(selector: ChipSelector, chip_id: str, chip: dict[str, Any] | None) -> bool:
    if chip is None:
        return False
    if selector.origin_countries is not None and chip.get("origin_country") not in \
            selector.origin_countries:
        return False
    if selector.models is None and selector.any_of is None:
        return True
    if selector.models and chip_id in selector.models:
        return True
    return any(
        (c.min_tpp is None or chip["tpp"] >= c.min_tpp)
        and (c.min_performance_density is None
             or chip["performance_density"] >= c.min_performance_density)
        for c in selector.any_of or ()
    )


def hq_chain(world: World, firm_id: str, day: date) -> list[tuple[str, str]]:
    """(firm, hq_country) for the firm and every firm above it, each as it stood on `day`."""
    chain: list[tuple[str, str]] = []
    seen: set[str] = set()
    current: str | None = firm_id
    while current and current not in seen:
        seen.add(current)
        firm = world.get("firm", current)
        if firm is None:
            break
        facts = firm.facts_on(day)
        chain.append((current, facts["hq_country"]))
        current = facts.get("parent_firm_id")
    return chain


def chain_firms(world: World, firm_id: str) -> list[RecordState]:
    """Every firm that is or has ever been above `firm_id` (for cut dates and evidence)."""
    found: list[RecordState] = []
    frontier, seen = [firm_id], set()
    while frontier:
        current = frontier.pop()
        if current in seen:
            continue
        seen.add(current)
        firm = world.get("firm", current)
        if firm is not None:
            found.append(firm)
            parents = [firm.original.get("parent_firm_id")]
            parents += [c.fields.get("parent_firm_id") for c in firm.changes]
            frontier += [p for p in parents if p]
    return found


def covering_licence(world: World, authority: str, holder: str, chip_id: str, country: str,
                     day: date, chips: int | None = None
                     ) -> tuple[RecordState | None, list[RecordState]]:
    """The first valid licence that covers the case, and every licence that would but for
    its dates (consulted: they are evidence either way). With `chips` (a lease's count that
    day), a licence with a quantity covers only up to it: leases draw nothing down."""
    consulted = [
        lic for lic in world.licences_held_by(holder)
        if lic.original.get("authority") == authority
        and chip_id in lic.original.get("chip_models", ())
        and country in lic.original.get("destination_countries", ())
    ]
    valid = [lic for lic in consulted if lic.holds_on(day) and (
        chips is None or lic.original.get("quantity") is None
        or chips <= lic.original["quantity"])]
    return (valid[0] if valid else None), consulted


def licence_cuts(licences: Iterable[RecordState]) -> set[date]:
    cuts: set[date] = set()
    for lic in licences:
        cuts.add(as_date(lic.original["valid_from"]))
        if lic.original.get("valid_to"):
            cuts.add(day_after(as_date(lic.original["valid_to"])))
        if lic.ended_from:
            cuts.add(lic.ended_from)
    return cuts


def span_cuts(state: RecordState) -> set[date]:
    """Where a record that runs from `starts_on` through `ends_on` can change."""
    cuts = {as_date(state.original["starts_on"]), *state.change_dates()}
    ends = [state.original.get("ends_on")] + [c.fields.get("ends_on") for c in state.changes]
    cuts |= {day_after(as_date(e)) for e in ends if e}
    if state.ended_from:
        cuts.add(state.ended_from)
    return cuts


def positions(*states: RecordState | None) -> frozenset[int]:
    return frozenset(p for s in states if s is not None for p in s.positions)


def versions(state: RecordState) -> list[dict[str, Any]]:
    """The record's facts as they stand before its first change and from each change on:
    every combination of values `facts_on` can return."""
    return [state.original, *(state.facts_on(day) for day in state.change_dates())]
