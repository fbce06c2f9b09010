"""Rules in force: when each regulation binds, with which parameters, judging which subjects."""

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter

from domain.evaluator.shared import as_date
from domain.records import RecordState, suspended_spans
from domain.rules import (
    DataLocalisationRule,
    ExportLicenceRule,
    RemoteComputeAccessRule,
    RestrictedPartyRule,
    Rule,
)
from domain.world import World, judged_kinds

_RULE = TypeAdapter(Rule)
AnyRule = (ExportLicenceRule | RemoteComputeAccessRule | DataLocalisationRule
           | RestrictedPartyRule)
Span = tuple[date, date | None]  # [from, to); None: open


@dataclass(frozen=True)
class RulePiece:
    """A regulation's parameters over [start, end)."""

    start: date
    end: date | None
    rule: AnyRule

    def covers(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)

    def spans(self, cuts: list[date]) -> list[Span]:
        """The piece cut at those of the (sorted) dates that fall inside it, in order."""
        ordered = [self.start] + [c for c in cuts
                                  if c > self.start and (self.end is None or c < self.end)]
        ends: list[date | None] = [*ordered[1:], self.end]
        return list(zip(ordered, ends, strict=True))


def in_force(regulation: RecordState) -> list[RulePiece]:
    """When the rule binds: from max(effective_from, compliance_from) until its rescission,
    with each amendment's parameters from its effective_from, and holes where a suspension
    covers the days."""
    pieces = _unsuspended(regulation)
    for hole in suspended_spans(regulation):
        pieces = [p for piece in pieces for p in _without(piece, hole)]
    return pieces


def _without(piece: RulePiece, hole: tuple[date, date | None]) -> list[RulePiece]:
    """The piece less the days of [hole): none, one or two pieces with its parameters."""
    start, end = hole
    kept = []
    if piece.start < start:
        kept.append(RulePiece(piece.start, _earlier(piece.end, start), piece.rule))
    if end is not None and (piece.end is None or end < piece.end):
        kept.append(RulePiece(max(piece.start, end), piece.end, piece.rule))
    return [p for p in kept if p.end is None or p.start < p.end]


def _earlier(a: date | None, b: date) -> date:
    return b if a is None else min(a, b)


def _unsuspended(regulation: RecordState) -> list[RulePiece]:
    facts = regulation.original
    start = max(as_date(facts["effective_from"]),
                as_date(facts.get("compliance_from") or facts["effective_from"]))
    end = regulation.ended_from
    if end is not None and end <= start:
        return []
    cuts = sorted({start, *(d for d in regulation.change_dates() if d > start
                           and (end is None or d < end))})
    pieces = []
    for i, cut in enumerate(cuts):
        piece_end = cuts[i + 1] if i + 1 < len(cuts) else end
        pieces.append(RulePiece(cut, piece_end, _parse_rule(regulation.facts_on(cut)["rule"])))
    return pieces


def _parse_rule(data: dict[str, Any]) -> AnyRule:
    return _parse_rule_json(_freeze(data))


@lru_cache(maxsize=4096)
def _parse_rule_json(frozen: str) -> AnyRule:
    return _RULE.validate_json(frozen)


def _freeze(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


def rules_for(world: World, subject_kind: str) -> list[tuple[RecordState, list[RulePiece]]]:
    """The regulations whose rule (in some version) judges this kind of subject, with their
    in-force pieces; computed once per state of the world's regulations."""
    key = ("rules_for", subject_kind, world.regulation_stamp)
    if key not in world.memo:
        world.memo = {k: v for k, v in world.memo.items()
                      if not (k[0] == "rules_for" and k[2] != world.regulation_stamp)}
        chosen = []
        for regulation in sorted(world.of_kind("regulation"), key=lambda r: r.record_id):
            pieces = [p for p in in_force(regulation)
                      if subject_kind in judged_kinds(p.rule.kind,
                                                      getattr(p.rule, "applies_to", None))]
            if pieces:
                chosen.append((regulation, pieces))
        world.memo[key] = chosen
    rules: list[tuple[RecordState, list[RulePiece]]] = world.memo[key]
    return rules
