"""Who a restricted_party rule restricts on a day: the listed parties and, with
affiliates_min_share, every firm that restricted firms own together at least that share of
(direct shares summed over restricted owners, ownership as it stood that day), to a fixed
point. Only the firms above the one asked about (its owners, theirs, ...) can restrict it."""

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from domain.ownership import owned_above, owners_on
from domain.records import RecordState
from domain.rules import RestrictedPartyRule
from domain.world import World

Held = dict[str, Decimal]  # restricted owner -> its direct share


@dataclass(frozen=True)
class Restriction:
    why: str  # "listed", or "60% owned by listed huawei through huawei-cloud"
    firms: tuple[RecordState, ...]  # the firms the answer rests on (evidence)


def restriction(world: World, rule: RestrictedPartyRule, firm_id: str, day: date
                ) -> Restriction | None:
    """Why the firm is restricted on `day` under the rule; None when it is not."""
    memo = world.revision_memo("restricted")
    key = (tuple(rule.parties), rule.affiliates_min_share, firm_id, day)
    if key not in memo:
        memo[key] = _restriction(world, rule, firm_id, day)
    found: Restriction | None = memo[key]
    return found


def may_restrict(world: World, rule: RestrictedPartyRule, firm_ids: set[str]) -> bool:
    """Whether the rule could restrict any of the firms on any day: a listed party among
    them or (with affiliates) among the firms above them."""
    parties = set(rule.parties)
    if rule.affiliates_min_share is None:
        return not parties.isdisjoint(firm_ids)
    firms = (world.get("firm", f) for f in firm_ids)
    above = {a.record_id for f in firms if f is not None for a in owned_above(f, _lookup(world))}
    return not parties.isdisjoint(above | firm_ids)


def _lookup(world: World) -> Any:
    return lambda firm_id: world.get("firm", firm_id)


def _restriction(world: World, rule: RestrictedPartyRule, firm_id: str, day: date
                 ) -> Restriction | None:
    firm = world.get("firm", firm_id)
    listed = set(rule.parties)
    if firm_id in listed:
        return Restriction("listed", (firm,) if firm else ())
    if rule.affiliates_min_share is None or firm is None:
        return None
    via = _fixed_point(owned_above(firm, _lookup(world)), listed,
                       Decimal(repr(rule.affiliates_min_share)), day)
    if firm_id not in via:
        return None
    return Restriction(_owned_by(via, listed, via[firm_id]), _resting_on(world, via, firm_id))


def _fixed_point(firms: list[RecordState], listed: set[str], min_share: Decimal, day: date
                 ) -> dict[str, Held]:
    """Every affiliate restricted on `day` among `firms`, with the restricted owners (and
    their shares) that make it so. Restriction only grows as firms join, so repeating until
    nothing changes reaches the least fixed point."""
    restricted = {f.record_id for f in firms if f.record_id in listed}
    owners = {f.record_id: owners_on(f, day) for f in firms}
    via: dict[str, Held] = {}
    grew = True
    while grew:
        grew = False
        for firm_id, shares in owners.items():
            if firm_id in restricted:
                continue
            held = {o: s for o, s in shares.items() if o in restricted}
            if held and sum(held.values(), Decimal(0)) >= min_share:
                restricted.add(firm_id)
                via[firm_id] = held
                grew = True
    return via


def _owned_by(via: dict[str, Held], listed: set[str], held: Held) -> str:
    """"60% owned by listed huawei through huawei-cloud", or, for several restricted owners,
    "70% owned by restricted firms (40% by listed a; 30% by listed b through c)"."""
    parts = [(share, _path(via, listed, owner)) for owner, share in
             sorted(held.items(), key=lambda item: (-item[1], item[0]))]
    if len(parts) == 1:
        return f"{_percent(parts[0][0])} owned by {parts[0][1]}"
    each = "; ".join(f"{_percent(share)} by {path}" for share, path in parts)
    return f"{_percent(sum(held.values(), Decimal(0)))} owned by restricted firms ({each})"


def _path(via: dict[str, Held], listed: set[str], owner: str) -> str:
    """A listed firm at the top of the owner's restriction, and the firms in between."""
    between = []
    current = owner
    while current not in listed:
        between.append(current)
        current = max(via[current].items(), key=lambda item: (item[1], item[0]))[0]
    through = f" through {' and '.join(reversed(between))}" if between else ""
    return f"listed {current}{through}"


def _percent(share: Decimal) -> str:
    return f"{(share * 100).normalize():f}%"


def _resting_on(world: World, via: dict[str, Held], firm_id: str) -> tuple[RecordState, ...]:
    """The firm and every firm its restriction passes through, up to the listed ones."""
    seen: set[str] = set()
    frontier = [firm_id]
    while frontier:
        current = frontier.pop()
        if current not in seen:
            seen.add(current)
            frontier += list(via.get(current, ()))
    states = (world.get("firm", f) for f in sorted(seen))
    return tuple(s for s in states if s is not None)
