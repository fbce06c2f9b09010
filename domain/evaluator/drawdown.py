"""Licence draw-down (domain.md, "Licence quantities"): which licence each shipment of a
consignee draws on, for one authority, and what is left of each licence's quantity.

Shipments draw in order of shipped_on, ties by the position of their ShipmentRecorded (so the
answer never depends on the order later events were recorded in). A shipment that names a
licence of the authority draws only on it; otherwise on the covering licence with the
earliest valid_to (open-ended last; ties by id) that has enough left. Computed once per
(consignee, authority) per state of the world: every shipment of the consignee reads it.
"""

from dataclasses import dataclass
from datetime import date
from typing import Any

from domain.evaluator.licence_need import needed_authorities
from domain.evaluator.scratch import Scratch
from domain.evaluator.shared import as_date, positions
from domain.records import RecordState
from domain.world import World

_UNRECORDED = float("inf")  # a hypothetical shipment (no position) draws after recorded ones


@dataclass(frozen=True)
class Draw:
    """One shipment's draw on one authority: the licence that covers it (None: none does),
    why not when none does, and the records the answer rests on."""

    licence: RecordState | None
    left: int | None  # what the licence has left after this draw; None: no quantity
    why_not: str  # "" when covered
    evidence: frozenset[int]
    named: bool = False  # the shipment names the licence: no other may cover it


def draw_for(scratch: Scratch, shipment: RecordState, authority: str) -> Draw:
    consignee = str(scratch.facts_on(shipment, _shipped_on(shipment))["consignee_firm_id"])
    draws = _draws(scratch.world, consignee, authority)
    found = draws.get(shipment.record_id)
    return found if found is not None else _Ledger(scratch, consignee, authority).draw(shipment)


def _shipped_on(shipment: RecordState) -> date:
    return as_date(shipment.original["shipped_on"])


def _draws(world: World, consignee: str, authority: str) -> dict[str, Draw]:
    memo = world.revision_memo("draws")
    key = (consignee, authority)
    if key not in memo:
        memo[key] = _Ledger(Scratch(world), consignee, authority).run()
    found: dict[str, Draw] = memo[key]
    return found


class _Ledger:
    """The consignee's licences of one authority, drawn on by its shipments in order."""

    def __init__(self, scratch: Scratch, consignee: str, authority: str) -> None:
        self.scratch, self.consignee, self.authority = scratch, consignee, authority
        self.drawn: dict[str, int] = {}  # licence id -> chips drawn so far
        self.drawers: dict[str, list[RecordState]] = {}  # licence id -> shipments drawn

    def run(self) -> dict[str, Draw]:
        draws = {}
        for shipment in self._shipments():
            if self._draws_on_authority(shipment):
                draws[shipment.record_id] = self.draw(shipment)
        return draws

    def _shipments(self) -> list[RecordState]:
        world = self.scratch.world
        states = (world.get(ref.kind, ref.record_id)
                  for ref in world.subjects_of_firm(self.consignee) if ref.kind == "shipment")
        mine = [s for s in states if s is not None and s.original
                and s.original.get("consignee_firm_id") == self.consignee]
        return sorted(mine, key=lambda s: (_shipped_on(s), s.positions[0] if s.positions
                                           else _UNRECORDED, s.record_id))

    def _draws_on_authority(self, shipment: RecordState) -> bool:
        named = self._named(shipment)
        if named is not None:
            return True
        return self.authority in needed_authorities(self.scratch, shipment)

    def _named(self, shipment: RecordState) -> RecordState | None:
        """The licence of this authority the shipment names, if it names one."""
        licence_id = shipment.original.get("licence_id")
        licence = self.scratch.world.get("licence", licence_id)
        if licence is None or licence.original.get("authority") != self.authority:
            return None
        return licence

    def draw(self, shipment: RecordState) -> Draw:
        facts = self.scratch.facts_on(shipment, _shipped_on(shipment))
        named = self._named(shipment)
        if named is not None:
            why = self._why_not(named, shipment, facts)
            return self._take(named, shipment, facts) if not why else \
                Draw(None, None, why, self._evidence([named]), named=True)
        candidates = sorted(self._covering(shipment, facts), key=_draw_order)
        for licence in candidates:
            if self._left(licence, facts["quantity"]) is not None:
                return self._take(licence, shipment, facts)
        short = [self._shortfall(lic, shipment, facts) for lic in candidates]
        return Draw(None, None, "; ".join(short), self._evidence(self._consulted(facts)))

    def _covering(self, shipment: RecordState, facts: dict[str, Any]) -> list[RecordState]:
        day = _shipped_on(shipment)
        return [lic for lic in self._consulted(facts) if lic.holds_on(day)]

    def _consulted(self, facts: dict[str, Any]) -> list[RecordState]:
        """The consignee's licences of the authority for the chip and destination, whatever
        their dates: evidence either way."""
        return [lic for lic in self.scratch.world.licences_held_by(self.consignee)
                if lic.original.get("authority") == self.authority
                and facts["chip_model"] in lic.original.get("chip_models", ())
                and facts["to_country"] in lic.original.get("destination_countries", ())]

    def _left(self, licence: RecordState, needed: int) -> int | None:
        """What is left of the licence after drawing `needed`; None when it has not enough.
        A licence without a quantity always has enough (and -1 stands for unlimited)."""
        quantity = licence.original.get("quantity")
        if quantity is None:
            return -1
        left = int(quantity) - self.drawn.get(licence.record_id, 0) - needed
        return left if left >= 0 else None

    def _take(self, licence: RecordState, shipment: RecordState, facts: dict[str, Any]) -> Draw:
        left = self._left(licence, facts["quantity"])
        evidence = self._evidence([licence])
        self.drawn[licence.record_id] = self.drawn.get(licence.record_id, 0) + facts["quantity"]
        self.drawers.setdefault(licence.record_id, []).append(shipment)
        return Draw(licence, None if left == -1 else left, "", evidence)

    def _shortfall(self, licence: RecordState, shipment: RecordState,
                   facts: dict[str, Any]) -> str:
        quantity = int(licence.original["quantity"])
        left = quantity - self.drawn.get(licence.record_id, 0)
        return (f"licence {licence.record_id} has {left:,} of {quantity:,} left; shipment "
                f"{shipment.record_id} needs {facts['quantity']:,}")

    def _why_not(self, licence: RecordState, shipment: RecordState,
                 facts: dict[str, Any]) -> str:
        """Why the licence a shipment names does not cover it ("" when it does)."""
        day, lic = _shipped_on(shipment), licence.original
        if lic.get("holder_firm_id") != facts["consignee_firm_id"]:
            return f"licence {licence.record_id} is held by {lic.get('holder_firm_id')}"
        if facts["chip_model"] not in lic.get("chip_models", ()):
            return f"licence {licence.record_id} is not for {facts['chip_model']}"
        if facts["to_country"] not in lic.get("destination_countries", ()):
            return f"licence {licence.record_id} is not for {facts['to_country']}"
        if licence.ended_from is not None and licence.ended_from <= day:
            return f"licence {licence.record_id} was revoked from {licence.ended_from}"
        if not licence.holds_on(day):
            return f"licence {licence.record_id} is not valid on {day}"
        if self._left(licence, facts["quantity"]) is None:
            return self._shortfall(licence, shipment, facts)
        return ""

    def _evidence(self, licences: list[RecordState]) -> frozenset[int]:
        """The licences, and the shipments that drew on them before: what is left rests on
        them."""
        earlier = [s for lic in licences for s in self.drawers.get(lic.record_id, ())]
        return positions(*licences, *earlier)


def _draw_order(licence: RecordState) -> tuple[bool, date, str]:
    valid_to = licence.original.get("valid_to")
    return (valid_to is None, as_date(valid_to) if valid_to else date.max, licence.record_id)
