"""Audit replays: posture and residency recomputed from the raw log alone.

The log is streamed from position 1 to the position `known_at` maps to, folded into a World
and judged by the same pure evaluator the projections call. The projection tables are read
only afterwards, to say whether they agree. A what-if adds hypothetical events after the log:
validated like real appends, evaluated, never stored.

A subject whose evaluation raises is left out of its firm's answer and listed among the
failed subjects; the comparison with the projections leaves it out too (the projections keep
its last good rows under an alarm), so `consistent_with_projections` still says whether
everything both could evaluate agrees.
"""

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

import orjson
import structlog

from domain.aggregates import TOPIC_TO_TYPE
from domain.application import Append, Ledger
from domain.drafts import DraftRecord
from domain.evaluator import (
    Finding,
    Posture,
    Processing,
    ProcessingPiece,
    posture_on,
    residency_from,
)
from domain.kinds import KIND_BY_EVENT_TYPE
from domain.records import LoggedEvent
from domain.types import Status
from domain.world import SubjectRef, World
from infra.findings_store import FindingsStore
from infra.gc_pause import gc_paused
from infra.store import LogStore
from projections.findings import (
    PROJECTION_NAME,
    SubjectFailure,
    evaluate,
    failure_reason,
    firm_of,
)

log = structlog.get_logger("chipledger.replay")


@dataclass(frozen=True)
class FirmAnswer:
    posture: Posture
    residency_status: Status
    processing: list[Processing]


@dataclass(frozen=True)
class Difference:
    firm_id: str
    key: tuple[str, str, str]  # subject_type, subject_id, regulation_id
    replayed: Finding | None
    projected: Finding | None


@dataclass
class Replay:
    as_of: date
    known_at: datetime
    position: int
    events_replayed: int
    firms: dict[str, FirmAnswer]
    consistent_with_projections: bool | None = None
    projection_position: int | None = None
    differences: list[Difference] = field(default_factory=list)
    hypothetical_events: int = 0
    baseline: dict[str, FirmAnswer] | None = None
    failed_subjects: list[SubjectFailure] = field(default_factory=list)


def replay_world(store: LogStore, position: int, batch: int = 20_000) -> tuple[World, int]:
    """Fold the raw log up to `position`, streamed in pages (memory grows with records, not
    with events). Reads only what folding needs (position, topic, state), without building
    a sealed entry per event: the seals are the verifier's business, not the replay's."""
    world, count = World(), 0
    fold = world.fold
    with gc_paused():
        for page in store.iter_states(upto=position, page=batch):
            for at, topic, state in page:
                kind, event_type = KIND_AND_TYPE[topic]
                payload = decode_state(state)
                fold(kind, payload["record_id"], event_type, payload["data"], at)
                count += 1
    return world, count


def decode_state(state: bytes) -> Any:
    """A stored event's JSON as json.loads reads it, in about a third of the time. orjson
    reads an integer beyond 64 bits as a float where json keeps it exact: such an integer
    takes 19 digits or more in a row, so a state holding a run that long (none of the bodies
    we write needs one) goes to json, as does anything orjson refuses."""
    if _LONG_RUN in state.translate(_DIGITS_AS_ZEROS):
        return json.loads(state)
    try:
        return orjson.loads(state)
    except orjson.JSONDecodeError:
        return json.loads(state)


_DIGITS_AS_ZEROS = bytes(ord("0") if b in b"0123456789" else ord(" ") for b in range(256))
_LONG_RUN = b"0" * 19  # any integer of 18 digits or fewer fits in 64 bits


# topic -> (record kind, event type), so no event needs its class or its kind table looked up
KIND_AND_TYPE = {topic: (KIND_BY_EVENT_TYPE[name].kind, name)
                  for topic, name in TOPIC_TO_TYPE.items()}


Failures = dict[SubjectRef, SubjectFailure]


def judge(world: World, firm_ids: Sequence[str], day: date,
          failures: Failures | None = None) -> dict[str, FirmAnswer]:
    """Each firm's posture and residency on `day`; a subject whose evaluation raises is left
    out, and noted in `failures` when given."""
    answers = {}
    failed: Failures = {} if failures is None else failures
    with gc_paused():
        for firm_id in firm_ids:
            findings, pieces = firm_findings(world, firm_id, failed)
            status, _, processing = residency_from(firm_id, findings, pieces, day)
            answers[firm_id] = FirmAnswer(posture_on(firm_id, findings, day), status,
                                          processing)
    return answers


def firm_findings(world: World, firm_id: str, failures: Failures
                  ) -> tuple[list[Finding], list[ProcessingPiece]]:
    findings: list[Finding] = []
    pieces: list[ProcessingPiece] = []
    for ref in sorted(world.subjects_of_firm(firm_id)):
        try:
            found, processed = evaluate(world, ref)
        except Exception as error:
            failures[ref] = SubjectFailure(ref, firm_of(world, ref), failure_reason(error))
            continue
        findings += [f for f in found if f.firm_id == firm_id]
        pieces += processed
    return findings, pieces


class ReplayNeeds(Protocol):
    """What a replay uses of the composition root (infra.bootstrap's Container has it)."""

    @property
    def store(self) -> LogStore: ...
    @property
    def ledger(self) -> Ledger: ...


class ReplayService:
    def __init__(self, needs: ReplayNeeds) -> None:
        self.store = needs.store
        self.ledger: Ledger = needs.ledger
        self.findings = FindingsStore(needs.store.dialect)

    def replay(self, as_of: date, known_at: datetime, firm_ids: Sequence[str] | None = None,
               hypothetical: Sequence[Append] = ()) -> Replay:
        position = self.store.position_at(known_at)
        world, count = replay_world(self.store, position)
        firms = list(firm_ids) if firm_ids else sorted(f.record_id for f in
                                                       world.of_kind("firm"))
        failures: Failures = {}
        result = Replay(as_of, known_at, position, count, judge(world, firms, as_of, failures))
        if hypothetical:
            result.baseline = result.firms
            result.hypothetical_events = self._imagine(world, hypothetical)
            result.firms = judge(world, firms, as_of, failures)
        result.failed_subjects = [failures[ref] for ref in sorted(failures)]
        if not hypothetical:
            self._compare(result, firms)
        log.info("replayed", position=position, events=count, firms=len(firms),
                 hypothetical=result.hypothetical_events,
                 consistent=result.consistent_with_projections,
                 failed_subjects=len(result.failed_subjects))
        return result

    def _imagine(self, world: World, hypothetical: Sequence[Append]) -> int:
        """Stage the appends as real ones would be (same validation), then fold their events
        into the world after the log. Nothing is saved."""
        staged = self.ledger.stage(hypothetical, drafts=True)
        head = self.store.head()
        position = head.position if head else 0
        count = 0
        for record in staged.pending:
            assert isinstance(record, DraftRecord)
            for event in record.pending_events:
                position += 1
                count += 1
                world.apply(record.state.kind, record.record_id,
                            LoggedEvent(event.type, event.data, position))
        return count

    def _compare(self, result: Replay, firms: Iterable[str]) -> None:
        projected_to = self.findings.tracking(PROJECTION_NAME)
        result.projection_position = projected_to
        if projected_to < result.position:
            return  # the read model has not got there yet: no verdict either way
        failed = {(f.subject.kind, f.subject.record_id) for f in result.failed_subjects}
        for firm_id in firms:
            mine = {f.key: f for f in result.firms[firm_id].posture.findings}
            theirs = {f.key: f for f in self.findings.findings(
                position=result.position, firm_id=firm_id, day=result.as_of)
                if f.key[:2] not in failed}
            for key in sorted(mine.keys() | theirs.keys()):
                if mine.get(key) != theirs.get(key):
                    result.differences.append(
                        Difference(firm_id, key, mine.get(key), theirs.get(key)))
        result.consistent_with_projections = not result.differences

