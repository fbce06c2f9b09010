"""Data residency: where each country's personal data was processed, and its worst status."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from domain.evaluator.activities import activity_cuts, processed_in
from domain.evaluator.findings import Finding, worst
from domain.records import RecordState
from domain.types import Status
from domain.world import World


@dataclass(frozen=True)
class Processing:
    data_subject_country: str
    processed_in: str | None
    activity_id: str
    status: Status


@dataclass(frozen=True, order=True, slots=True)
class ProcessingPiece:
    """Where one country's personal data was processed by an activity, over [from, to)."""

    firm_id: str
    activity_id: str
    data_subject_country: str
    valid_from: date
    valid_to: date | None
    processed_in: str | None

    def holds_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day < self.valid_to)


def processing_pieces(world: World, activity: RecordState) -> list[ProcessingPiece]:
    """Where the activity processed each data-subject country's data, over valid time."""
    if not activity.original:
        return []
    firm_id = activity.original.get("firm_id") or ""
    ordered = sorted(activity_cuts(world, activity, firm_id))
    pieces: list[ProcessingPiece] = []
    for i, start in enumerate(ordered):
        end = ordered[i + 1] if i + 1 < len(ordered) else None
        if not activity.holds_on(start):
            continue
        facts = activity.facts_on(start)
        where, _ = processed_in(world, facts, start)
        for country in facts["data_subject_countries"]:
            piece = ProcessingPiece(firm_id, activity.record_id, country, start, end, where)
            pieces = _extend(pieces, piece)
    return sorted(pieces)


def _extend(pieces: list[ProcessingPiece], piece: ProcessingPiece) -> list[ProcessingPiece]:
    for i, p in enumerate(pieces):
        if (p.data_subject_country, p.processed_in, p.valid_to) == \
                (piece.data_subject_country, piece.processed_in, piece.valid_from):
            pieces[i] = ProcessingPiece(p.firm_id, p.activity_id, p.data_subject_country,
                                        p.valid_from, piece.valid_to, p.processed_in)
            return pieces
    return [*pieces, piece]


def residency_on(world: World, firm_id: str, findings: Iterable[Finding], day: date
                 ) -> tuple[Status, list[Finding], list[Processing]]:
    """The worst data_localisation status, and where each country's data was processed."""
    activities = (world.get(ref.kind, ref.record_id) for ref in world.subjects_of_firm(firm_id)
                  if ref.kind == "processing_activity")
    pieces = [p for a in activities if a is not None for p in processing_pieces(world, a)]
    return residency_from(firm_id, findings, pieces, day)


def residency_from(firm_id: str, findings: Iterable[Finding],
                   pieces: Iterable[ProcessingPiece], day: date
                   ) -> tuple[Status, list[Finding], list[Processing]]:
    """Residency from findings and processing pieces, wherever they were read from."""
    local = [f for f in findings if f.firm_id == firm_id and f.holds_on(day)
             and f.subject_type == "processing_activity"]
    rows = [
        Processing(p.data_subject_country, p.processed_in, p.activity_id,
                   worst(f.status for f in local if f.subject_id == p.activity_id))
        for p in sorted(pieces, key=lambda p: (p.activity_id, p.data_subject_country))
        if p.firm_id == firm_id and p.holds_on(day)
    ]
    return worst(f.status for f in local), sorted(local, key=lambda f: f.key), rows
