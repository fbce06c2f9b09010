"""What judging one subject under every regulation would otherwise compute again for each."""

from collections.abc import Callable
from datetime import date
from typing import Any

from domain.evaluator.shared import chain_firms, chip_matches, hq_chain
from domain.records import RecordState
from domain.rules import ChipSelector
from domain.world import World

Cuts = Callable[[World, RecordState, str], set[date]]


class Scratch:
    """What judging one subject under every regulation would otherwise compute again for
    each regulation: the subject's cut dates, and records' facts, spans and firm chains on
    each cut day. Lives for one `findings_for` call, so it never outlives the world's state."""

    __slots__ = ("chains", "cuts", "evidence", "facts", "firms", "holds", "world")

    def __init__(self, world: World) -> None:
        self.world = world
        self.cuts: dict[Cuts, list[date]] = {}
        self.facts: dict[tuple[int, date], dict[str, Any]] = {}
        self.holds: dict[tuple[int, date], bool] = {}
        self.chains: dict[tuple[str, date], list[tuple[str, str]]] = {}
        self.firms: dict[str, list[RecordState]] = {}
        self.evidence: dict[frozenset[int], tuple[int, ...]] = {}

    def sorted_cuts(self, cuts: Cuts, subject: RecordState, firm_id: str) -> list[date]:
        """The subject's cut dates, sorted once for every piece of every regulation."""
        if cuts not in self.cuts:
            self.cuts[cuts] = sorted(cuts(self.world, subject, firm_id))
        return self.cuts[cuts]

    def sorted_evidence(self, evidence: frozenset[int]) -> tuple[int, ...]:
        """Neighbouring pieces of one subject mostly cite the same records: sort once."""
        if evidence not in self.evidence:
            self.evidence[evidence] = tuple(sorted(evidence))
        return self.evidence[evidence]

    def facts_on(self, state: RecordState, day: date) -> dict[str, Any]:
        key = (id(state), day)
        if key not in self.facts:
            self.facts[key] = state.facts_on(day)
        return self.facts[key]

    def holds_on(self, state: RecordState, day: date) -> bool:
        key = (id(state), day)
        if key not in self.holds:
            self.holds[key] = state.holds_on(day)
        return self.holds[key]

    def hq_chain(self, firm_id: str, day: date) -> list[tuple[str, str]]:
        if (firm_id, day) not in self.chains:
            self.chains[(firm_id, day)] = hq_chain(self.world, firm_id, day)
        return self.chains[(firm_id, day)]

    def chain_firms(self, firm_id: str) -> list[RecordState]:
        if firm_id not in self.firms:
            self.firms[firm_id] = chain_firms(self.world, firm_id)
        return self.firms[firm_id]

    def matching_chip(self, selector: ChipSelector, chip_id: str, day: date
                      ) -> RecordState | None:
        """The chip model the subject names, if it is one the selector picks on `day`."""
        chip = self.world.get("chip_model", chip_id)
        facts = self.facts_on(chip, day) if chip else None
        return chip if chip_matches(selector, chip_id, facts) else None
