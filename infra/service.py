"""Appends with idempotency and retries (the write side's use case), the chain's
verification, and the export's line format. Records as of are in projections/records.py."""

import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from domain.application import Append, Outcome, Staged
from domain.errors import Conflict, FieldProblem, Invalid
from infra.bootstrap import Container
from infra.gc_pause import gc_paused
from infra.seal import RecordedBy, Seal, Submission, format_time
from infra.store import LogEntry, LogStore
from infra.verify import Verification, verify_rows
from projections.lists import ListService as RecordReads
from projections.records import entry_json

log = structlog.get_logger("chipledger.service")

MAX_ATTEMPTS = 5


class IdempotencyKeyReusedError(Invalid):
    where = ("header",)

    @property
    def field_problems(self) -> list[FieldProblem]:
        return [FieldProblem(("Idempotency-Key",), str(self), "idempotency_key_reused")]

    def __str__(self) -> str:
        return "this Idempotency-Key was used before with a different request"


class ConcurrentAppendError(Conflict):
    retry_after = 1

    def __str__(self) -> str:
        return "the record kept changing under concurrent appends; try again"


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    replayed: bool = False
    appended: tuple[str, ...] = ()  # the kind of each event appended


class AppendService:
    def __init__(self, container: Container) -> None:
        self.ledger = container.ledger
        self.store = container.store
        self.idempotency_ttl = timedelta(seconds=container.settings.idempotency_ttl)

    def append(
        self,
        appends: Sequence[Append],
        *,
        recorded_by: RecordedBy,
        batch: bool = False,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        side_write: Callable[[Any, list[Seal]], None] | None = None,
    ) -> Answer:
        """Stage and commit, every event sealed as recorded by `recorded_by` (whose key scopes
        `idempotency_key`); `side_write(cursor, seals)` runs in the events' transaction.

        A batch is staged as drafts (the bulk path: same checks, no aggregate machinery)."""
        with gc_paused() if batch else nullcontext():
            return self._append(appends, batch, recorded_by, idempotency_key, fingerprint,
                                side_write)

    def _append(
        self,
        appends: Sequence[Append],
        batch: bool,
        recorded_by: RecordedBy,
        idempotency_key: str | None,
        fingerprint: str,
        side_write: Callable[[Any, list[Seal]], None] | None,
    ) -> Answer:
        for _ in range(MAX_ATTEMPTS):
            if idempotency_key is not None:
                earlier = self.earlier_answer(recorded_by, idempotency_key, fingerprint)
                if earlier is not None:
                    return earlier
            staged = self.ledger.stage(appends, drafts=batch)
            status, build = self.prepare(staged, batch)
            if not staged.appended:
                return Answer(status, build({}))
            request = Submission(recorded_by, build, status, idempotency_key=idempotency_key,
                                 request_hash=fingerprint)
            try:
                self.ledger.commit(staged, submissions=[request], side_write=side_write)
            except IntegrityError:
                log.info("append_conflict_retry", records=[o.record_id for o in staged.outcomes])
                continue
            return Answer(status, request.answer, appended=build.kinds())
        raise ConcurrentAppendError()

    def earlier_answer(self, sender: RecordedBy, key: str, fingerprint: str) -> Answer | None:
        """The answer `sender` was given for this Idempotency-Key, if any: keys are the
        sender's own, so another API key's request under the same key is another request."""
        stored = self.store.stored_answer(sender.key_id, key)
        if stored is None:
            return None
        if stored.created_at and stored.created_at < datetime.now(UTC) - self.idempotency_ttl:
            self.store.forget_answer(sender.key_id, key, stored.created_at)
            return None
        if stored.request_hash != fingerprint:
            raise IdempotencyKeyReusedError()
        return Answer(stored.status, stored.answer, replayed=True)

    def prepare(self, staged: Staged, batch: bool) -> tuple[int, "AnswerBuilder"]:
        """The status and the answer builder of a staged request."""
        return self._status(staged, batch), AnswerBuilder(staged.outcomes,
                                                           self._known_seals(staged), batch)

    @staticmethod
    def _status(staged: Staged, batch: bool) -> int:
        if batch:
            return 201 if staged.appended else 200
        outcome = staged.outcomes[-1]
        return 201 if outcome.created and outcome.appended else 200

    def _known_seals(self, staged: Staged) -> dict[tuple[Any, int], Seal]:
        """Seals of records that a repeated create leaves as they were (no new event)."""
        known = {}
        for outcome in staged.outcomes:
            if not outcome.appended:
                entry = self.store.seal_of(outcome.originator_id, outcome.version)
                if entry is not None:
                    known[(outcome.originator_id, outcome.version)] = _seal_of(entry)
        return known


def _seal_of(entry: LogEntry) -> Seal:
    return Seal(entry.position, 0, entry.originator_id, entry.originator_version,
                entry.recorded_at, entry.prev_hash, entry.hash, entry.recorded_by)


class AnswerBuilder:
    def __init__(self, outcomes: list[Outcome], known: dict[tuple[Any, int], Seal],
                 batch: bool) -> None:
        self.outcomes, self.known, self.batch = outcomes, known, batch

    def __call__(self, sealed: Mapping[tuple[UUID, int], Seal]) -> Any:
        """The request's answer from the seals of its commit by (originator id, version)
        (which may hold other requests' events too, in a group commit)."""
        # Merged only when needed: the requests of a group share `sealed`, the group's seals
        by_event = {**self.known, **sealed} if self.known else sealed
        times: dict[datetime, str] = {}  # a commit's events share one time: format it once
        results = [self._result(o, by_event, times) for o in self.outcomes]
        if not self.batch:
            return results[-1]
        positions = sorted({by_event[(o.originator_id, o.version)].position
                            for o in self.outcomes if o.appended})
        return {
            "count": len(results),
            "appended": len(positions),
            "positions": positions,
            "results": results,
        }

    def kinds(self) -> tuple[str, ...]:
        return tuple(o.kind for o in self.outcomes if o.appended)

    @staticmethod
    def _result(outcome: Outcome, by_event: Mapping[tuple[Any, int], Seal],
                times: dict[datetime, str]) -> dict[str, Any]:
        seal = by_event[(outcome.originator_id, outcome.version)]
        if seal.recorded_at not in times:
            times[seal.recorded_at] = format_time(seal.recorded_at)
        return {
            "kind": outcome.kind,
            "id": outcome.record_id,
            "version": outcome.version,
            "position": seal.position,
            "recorded_at": times[seal.recorded_at],
        }


# Reads ---------------------------------------------------------------------------------------


class ReadService(RecordReads):
    """Records as of and their lists (projections.records, .lists) over a container's log,
    and the chain's check."""

    def __init__(self, container: Container) -> None:
        super().__init__(container.store)
        self.store = container.store

    def verify(self) -> Verification:
        return verify_log(self.store)


def verify_log(store: LogStore) -> Verification:
    """Recompute the whole hash chain from position 1."""
    # closing: a mismatch ends the walk early; stop reading ahead and free the connection
    with closing(store.iter_chain_rows()) as pages:
        result = verify_rows(pages, store.canonical_time)
    log.info("chain_verified", ok=result.ok, verified_through=result.verified_through,
             first_mismatch=result.first_mismatch)
    return result


def export_line(entry: LogEntry) -> str:
    """One line of an export: the event as shown, plus what offline verification needs."""
    return json.dumps(export_json(entry), separators=(",", ":"), sort_keys=True,
                      ensure_ascii=False)


def export_json(entry: LogEntry) -> dict[str, Any]:
    line = entry_json(entry)
    line |= {
        "originator_id": str(entry.originator_id),
        "originator_version": entry.originator_version,
        "topic": entry.topic,
        "state": entry.state.decode(),
        "prev_hash": entry.prev_hash,
    }
    return line


