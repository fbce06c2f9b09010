"""The bitemporal findings projection, as logic: which findings open and close as the log
grows. Storage is infra's; this module decides what to write.

Events are taken a commit at a time (all events sharing a `recorded_at`): a known_at never
falls between two events of one commit, so that is the finest grain the record axis needs.
For each commit, the subjects it touches are recomputed over all valid time with the pure
evaluator and compared with their open findings: what no longer holds is closed at the
commit's position, what is new is opened there, and an unchanged finding keeps its row.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.evaluator import Finding, ProcessingPiece, findings_for, processing_pieces
from domain.records import LoggedEvent
from domain.world import SubjectRef, World
from projections.outbox import Message, announce

PROJECTION_NAME = "findings"


@dataclass(frozen=True)
class LogEvent:
    """What the projection needs of one sealed event."""

    position: int
    recorded_at: datetime
    kind: str
    record_id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class OpenFinding:
    finding: Finding
    recorded_from_position: int


@dataclass(frozen=True)
class OpenPiece:
    piece: ProcessingPiece
    recorded_from_position: int


@dataclass
class Commit:
    """What one commit changed: rows to close and rows to open, at its last position."""

    position: int
    recorded_at: datetime
    closed: list[OpenFinding] = field(default_factory=list)
    opened: list[Finding] = field(default_factory=list)
    closed_pieces: list[OpenPiece] = field(default_factory=list)
    opened_pieces: list[ProcessingPiece] = field(default_factory=list)
    touched: set[SubjectRef] = field(default_factory=set)
    messages: list[Message] = field(default_factory=list)


def held(finding: Finding) -> Finding:
    """A finding as the projection keeps it between commits: everything that keys, times and
    grades it, with its explanation and evidence replaced by a digest of both. Whether a
    finding changed is still exact (the digest moves with either), and the open findings of
    a million-event ledger take a fraction of the memory (explanations are long and unique).
    The full finding is what gets written; it is recomputed whenever its subject is touched.
    """
    digest = hashlib.blake2b(repr((finding.explanation, finding.evidence)).encode(),
                             digest_size=8).hexdigest()
    return Finding(finding.firm_id, finding.subject_type, finding.subject_id,
                   finding.regulation_id, finding.valid_from, finding.valid_to,
                   finding.status, finding.citation, digest, ())


class FindingsProjection:
    def __init__(self, world: World | None = None) -> None:
        self.world = world if world is not None else World()
        self.open: dict[SubjectRef, dict[Finding, int]] = {}
        self.open_pieces: dict[SubjectRef, dict[ProcessingPiece, int]] = {}
        # Commits up to here were announced when first projected; a rebuild does not
        # announce them again (their messages are already in the outbox).
        self.announced_through = 0

    def replay(self, event: LogEvent) -> None:
        """Fold an already-projected event into the world (on start-up, no rows written)."""
        self.world.apply(event.kind, event.record_id,
                         LoggedEvent(event.type, event.data, event.position))

    def restore(self, rows: Iterable[OpenFinding], pieces: Iterable[OpenPiece] = ()) -> None:
        for row in rows:
            ref = SubjectRef(row.finding.subject_type, row.finding.subject_id)
            kept = held(row.finding)
            self.open.setdefault(ref, {})[kept] = row.recorded_from_position
        for piece in pieces:
            ref = SubjectRef("processing_activity", piece.piece.activity_id)
            self.open_pieces.setdefault(ref, {})[piece.piece] = piece.recorded_from_position

    def apply_commit(self, events: list[LogEvent], *, owned: bool = False) -> Commit:
        """Fold one commit's events in and say which rows it closes and opens. `owned`: the
        events' data dicts are this projection's to keep and change (freshly decoded), so
        the world takes them without copying."""
        last = events[-1]
        commit = Commit(last.position, last.recorded_at)
        for event in events:
            if owned:
                self.world.fold(event.kind, event.record_id, event.type, event.data,
                                event.position)
            else:
                self.replay(event)
            commit.touched |= self.world.touched_by(event.kind, event.record_id)
        announcing = last.position > self.announced_through
        before: dict[str, set[Finding]] = {}
        pieces: dict[str, list[tuple[ProcessingPiece, bool]]] = {}
        for ref in sorted(commit.touched):
            current = self.open.get(ref, {})
            fresh = {held(f): f for f in findings_for(self.world, ref)}
            closed = [f for f in current if f not in fresh]
            kept = {f: p for f, p in current.items() if f in fresh}
            opened = sorted(fresh.keys() - kept.keys())
            if announcing:
                for firm in {f.firm_id for f in (*closed, *opened)}:
                    if firm not in before:
                        before[firm] = self._open_of_firm(firm)
            commit.closed += [OpenFinding(f, current[f]) for f in closed]
            commit.opened += sorted(fresh[f] for f in opened)
            # Subjects with no open finding (most shipments, say) keep no entry at all.
            if kept or opened:
                self.open[ref] = kept | dict.fromkeys(opened, last.position)
            else:
                self.open.pop(ref, None)
            if ref.kind == "processing_activity":
                for piece, was_opened in self._recompute_pieces(ref, commit):
                    pieces.setdefault(piece.firm_id, []).append((piece, was_opened))
        if announcing:
            after = {firm: self._open_of_firm(firm) for firm in before}
            listed = [{"position": e.position, "kind": e.kind, "record_id": e.record_id,
                       "type": e.type} for e in events]
            commit.messages = announce(last.position, last.recorded_at, listed, before, after,
                                       pieces)
        return commit

    def _open_of_firm(self, firm_id: str) -> set[Finding]:
        """The firm's open findings (as held), gathered from its subjects: cheaper in memory
        than an index of every open finding by firm, and a firm has tens of subjects."""
        return {f for ref in self.world.subjects_of_firm(firm_id)
                for f in self.open.get(ref, ()) if f.firm_id == firm_id}

    def _recompute_pieces(self, ref: SubjectRef, commit: Commit
                          ) -> list[tuple[ProcessingPiece, bool]]:
        state = self.world.get(ref.kind, ref.record_id)
        fresh = set(processing_pieces(self.world, state)) if state else set()
        current = self.open_pieces.get(ref, {})
        closed = [OpenPiece(p, f) for p, f in current.items() if p not in fresh]
        commit.closed_pieces += closed
        kept = {p: f for p, f in current.items() if p in fresh}
        opened = sorted(fresh - kept.keys())
        commit.opened_pieces += opened
        if kept or opened:
            self.open_pieces[ref] = kept | dict.fromkeys(opened, commit.position)
        else:
            self.open_pieces.pop(ref, None)
        return [(c.piece, False) for c in closed] + [(p, True) for p in opened]

def commits(events: Iterable[LogEvent]) -> Iterable[list[LogEvent]]:
    """Group consecutive events by their recorded_at: one group a commit."""
    group: list[LogEvent] = []
    for event in events:
        if group and event.recorded_at != group[-1].recorded_at:
            yield group
            group = []
        group.append(event)
    if group:
        yield group
