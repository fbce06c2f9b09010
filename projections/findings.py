"""The bitemporal findings projection, as logic: which findings open and close as the log
grows. Storage is infra's; this module decides what to write.

Events are taken a commit at a time (all events sharing a `recorded_at`): a known_at never
falls between two events of one commit, so that is the finest grain the record axis needs.
For each commit, the subjects it touches are recomputed over all valid time with the pure
evaluator and compared with their open findings: what no longer holds is closed at the
commit's position, what is new is opened there, and an unchanged finding keeps its row.

A subject whose evaluation raises is isolated: its open rows stay as they were (its last good
findings, or none), the failure is reported with the commit, and every other subject goes on.
A later commit that touches it and evaluates it reports it recovered.
"""

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.evaluator import Finding, ProcessingPiece, findings_for, processing_pieces
from domain.records import LoggedEvent
from domain.world import FIRM_FIELD, SUBJECT_KINDS, SubjectRef, World
from projections.outbox import Message, announce

PROJECTION_NAME = "findings"
# What a read model's text column can hold: PostgreSQL refuses NUL in text (SQLite would
# take it), and one backend must not project what the other cannot.
_UNSTORABLE = "\x00"


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


@dataclass(frozen=True)
class SubjectFailure:
    """A subject whose evaluation raised: whose it is, and why (`ExceptionType: message`)."""

    subject: SubjectRef
    firm_id: str
    reason: str

    @property
    def key(self) -> str:
        return subject_key(self.subject)


def subject_key(subject: SubjectRef) -> str:
    """How a subject is named in alarms: `<subject_type>/<subject_id>`."""
    return f"{subject.kind}/{subject.record_id}"


def subject_of_key(key: str) -> SubjectRef | None:
    kind, _, record_id = key.partition("/")
    return SubjectRef(kind, record_id) if kind in SUBJECT_KINDS and record_id else None


def failure_reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def evaluate(world: World, ref: SubjectRef) -> tuple[list[Finding], list[ProcessingPiece]]:
    """One subject's findings over all valid time, and (for an activity) where it processed
    each country's data: what projections and replays both take of a subject. Raises what
    the evaluation raises, and ValueError for a finding the read model could not store."""
    findings = findings_for(world, ref)
    state = world.get(ref.kind, ref.record_id)
    pieces = processing_pieces(world, state) if state and ref.kind == "processing_activity" \
        else []
    for finding in findings:
        if _UNSTORABLE in finding.citation or _UNSTORABLE in finding.explanation:
            raise ValueError(f"a finding under {finding.regulation_id} holds a NUL character, "
                             "which the read model cannot store")
    return findings, pieces


def firm_of(world: World, ref: SubjectRef) -> str:
    state = world.get(ref.kind, ref.record_id)
    return str(state.original.get(FIRM_FIELD[ref.kind]) or "") if state else ""


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
    failed: list[SubjectFailure] = field(default_factory=list)
    recovered: list[SubjectRef] = field(default_factory=list)  # failing before, evaluated now


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
        self.failing: set[SubjectRef] = set()  # whose last evaluation raised
        # Commits up to here were announced when first projected; a rebuild does not
        # announce them again (their messages are already in the outbox).
        self.announced_through = 0

    def replay(self, event: LogEvent) -> None:
        """Fold an already-projected event into the world (on start-up, no rows written)."""
        self.world.apply(event.kind, event.record_id,
                         LoggedEvent(event.type, event.data, event.position))

    def restore(self, rows: Iterable[OpenFinding], pieces: Iterable[OpenPiece] = (),
                failing: Iterable[SubjectRef] = ()) -> None:
        self.failing = set(failing)
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
            evaluated = self._evaluate(ref, commit)
            if evaluated is None:
                continue  # its rows stay as they were
            found, fresh_pieces = evaluated
            fresh = {held(f): f for f in found}
            current = self.open.get(ref, {})
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
                for piece, was_opened in self._recompute_pieces(ref, fresh_pieces, commit):
                    pieces.setdefault(piece.firm_id, []).append((piece, was_opened))
        if announcing:
            after = {firm: self._open_of_firm(firm) for firm in before}
            listed = [{"position": e.position, "kind": e.kind, "record_id": e.record_id,
                       "type": e.type} for e in events]
            commit.messages = announce(last.position, last.recorded_at, listed, before, after,
                                       pieces)
        return commit

    def _evaluate(self, ref: SubjectRef, commit: Commit
                  ) -> tuple[list[Finding], list[ProcessingPiece]] | None:
        """The subject's findings and pieces; None, with the failure noted in the commit,
        when its evaluation raises (whatever an old log holds must not stop the others)."""
        try:
            evaluated = evaluate(self.world, ref)
        except Exception as error:
            self.failing.add(ref)
            commit.failed.append(SubjectFailure(ref, firm_of(self.world, ref),
                                                failure_reason(error)))
            return None
        if ref in self.failing:
            self.failing.discard(ref)
            commit.recovered.append(ref)
        return evaluated

    def _open_of_firm(self, firm_id: str) -> set[Finding]:
        """The firm's open findings (as held), gathered from its subjects: cheaper in memory
        than an index of every open finding by firm, and a firm has tens of subjects."""
        return {f for ref in self.world.subjects_of_firm(firm_id)
                for f in self.open.get(ref, ()) if f.firm_id == firm_id}

    def _recompute_pieces(self, ref: SubjectRef, found: list[ProcessingPiece], commit: Commit
                          ) -> list[tuple[ProcessingPiece, bool]]:
        fresh = set(found)
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
