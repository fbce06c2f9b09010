"""Group commit: one writer per process gathers concurrent appends into one transaction.

The log's writers are serialised anyway (PostgreSQL's table lock, SQLite's single writer), so
each commit's fsync and lock are what cost. Requests queue; the writer takes all that are
waiting, stages each on its own (a refused request is refused alone and leaves the others'
records as they were), commits them together, and answers each only after that commit. If
the shared commit conflicts (another process wrote the same record, or two requests share an
idempotency key), each request is committed again on its own, so no request fails for
another's sake. Each request's events are sealed as recorded by its own sender, and its
answer is built in the shared transaction: any other failure refuses the whole group.

Each group's commit has the database timeout (infra.deadlines), and a request waits for the
writer no longer than the timeout and a little more: when the database hangs, a request still
queued is answered at once and never written, one being committed is answered as in doubt.
"""

import asyncio
import queue
import threading
from collections.abc import Callable, Sequence
from contextvars import copy_context
from dataclasses import dataclass, field
from functools import partial
from uuid import UUID

import structlog
from eventsourcing.persistence import IntegrityError

from domain.application import Append, Staged
from domain.errors import Conflict, Invalid, NotFound, Precondition
from infra.deadlines import DatabaseTimeoutError, database_calls, is_unavailable
from infra.seal import RecordedBy, Seal, Submission
from infra.service import Answer, AnswerBuilder, AppendService

log = structlog.get_logger("chipledger.group_commit")


def _settle(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


@dataclass
class _Request:
    """A single append waiting for the shared writer (batches never queue: see submit)."""

    appends: Sequence[Append]
    recorded_by: RecordedBy
    key: str | None
    fingerprint: str
    done: threading.Event = field(default_factory=threading.Event)
    answer: Answer | None = None
    error: BaseException | None = None
    wake: Callable[[], object] | None = None  # an async caller's: wakes its event loop
    abandoned: bool = False  # its caller stopped waiting: not to be written if not yet staged

    def resolve(self, answer: Answer | None = None, error: BaseException | None = None) -> None:
        self.answer, self.error = answer, error
        self.done.set()
        if self.wake is not None:
            self.wake()

    def outcome(self) -> Answer:
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


@dataclass
class _Ready:
    request: _Request
    status: int
    build: AnswerBuilder
    events: frozenset[tuple[UUID, int]]  # (originator id, version) of each event it appends
    writes: bool = True  # False: it only repeats a record this group is about to write

    def submission(self) -> Submission:
        request = self.request
        return Submission(request.recorded_by, self.build, self.status, self.events,
                          request.key if self.writes else None, request.fingerprint)


class GroupCommitter:
    def __init__(self, service: AppendService, *, max_group: int = 512,
                 database_timeout: float | None = None) -> None:
        self.service = service
        self.max_group = max_group
        self.database_timeout = database_timeout
        self.queue: queue.Queue[_Request | None] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.groups = 0
        self.requests = 0

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout=10)
            self.thread = None

    def submit(self, appends: Sequence[Append], *, recorded_by: RecordedBy, batch: bool = False,
               idempotency_key: str | None = None, fingerprint: str = "") -> Answer:
        """Append through the shared writer; blocks until this request's commit. A batch is
        already one transaction of many events: it is committed on its own, in bulk."""
        if self.thread is None or batch:
            return self.service.append(appends, recorded_by=recorded_by, batch=batch,
                                       idempotency_key=idempotency_key, fingerprint=fingerprint)
        request = _Request(appends, recorded_by, idempotency_key, fingerprint)
        self.queue.put(request)
        request.done.wait()
        return request.outcome()

    async def submit_async(self, appends: Sequence[Append], *, recorded_by: RecordedBy,
                           idempotency_key: str | None = None, fingerprint: str = "") -> Answer:
        """`submit` of a single append for an event loop: it waits on a future the writer
        settles, not in a worker thread of its own (a thread per waiting request, each woken
        through the GIL, cost more than the append's own work)."""
        loop = asyncio.get_running_loop()
        if self.thread is None:  # not started: the caller's own transaction, off the loop
            return await loop.run_in_executor(None, copy_context().run, partial(
                self.submit, appends, recorded_by=recorded_by, idempotency_key=idempotency_key,
                fingerprint=fingerprint))
        future: asyncio.Future[None] = loop.create_future()
        request = _Request(appends, recorded_by, idempotency_key, fingerprint,
                           wake=lambda: loop.call_soon_threadsafe(_settle, future))
        self.queue.put(request)
        # Shielded: a cancelled caller must not cancel the future the writer settles; the
        # append itself goes on either way, as it would in a worker thread.
        try:
            await asyncio.wait_for(asyncio.shield(future), self._patience())
        except TimeoutError:
            request.abandoned = True
            raise DatabaseTimeoutError(self.database_timeout or 0) from None
        return request.outcome()

    def _patience(self) -> float | None:
        """How long a request waits for the writer: the group before its own may take the
        timeout too, and a failed write is retried once after 0.2 s (infra.deadlines)."""
        return None if self.database_timeout is None else self.database_timeout + 1.0

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self.max_group:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self.queue.put(None)  # stop after this group
                    break
                group.append(nxt)
            try:
                with database_calls(self.database_timeout):
                    self._commit(group)
            except BaseException as error:  # never leave a caller waiting
                if is_unavailable(error):  # answered 503; the API logs it once per request
                    log.warning("group_commit_unavailable", requests=len(group),
                                error=f"{type(error).__name__}: {error}")
                else:
                    log.exception("group_commit_failed", requests=len(group))
                for request in group:
                    if not request.done.is_set():
                        request.resolve(error=error)

    def _commit(self, group: list[_Request]) -> None:
        shared, ready = Staged(), []
        self.service.ledger.prefetch(shared, [a for r in group for a in r.appends])
        for request in group:
            item = self._stage(request, shared)
            if item is not None:
                ready.append(item)
        if not ready:
            return
        seals: list[Seal] = []
        submissions = [item.submission() for item in ready]
        try:
            self.service.ledger.commit(shared, seals=seals, submissions=submissions)
        except IntegrityError:
            log.info("group_commit_conflict", requests=len(ready))
            for item in ready:
                self._alone(item.request)
            return
        except Exception as error:
            for item in ready:
                item.request.resolve(error=error)
            return
        self.groups += 1
        self.requests += len(ready)
        for item, submission in zip(ready, submissions, strict=True):
            item.request.resolve(Answer(item.status, submission.answer,
                                        appended=item.build.kinds()))

    def _stage(self, request: _Request, shared: Staged) -> _Ready | None:
        """Stage one request on top of the group's; answers it at once when nothing is to be
        written (a replayed key, a repeated create) or when it is refused."""
        if request.abandoned:
            request.resolve(error=DatabaseTimeoutError(self.database_timeout or 0))
            return None
        try:
            if request.key is not None:
                earlier = self.service.earlier_answer(request.recorded_by, request.key,
                                                      request.fingerprint)
                if earlier is not None:
                    request.resolve(earlier)
                    return None
            trial = self.service.ledger.stage(request.appends, base=shared)
            status, build = self.service.prepare(trial, batch=False)
        except (NotFound, Conflict, Precondition, Invalid) as error:  # a refusal: not Unavailable
            request.resolve(error=error)
            return None
        if not trial.appended:
            if all(o.appended or (o.originator_id, o.version) in build.known
                   for o in trial.outcomes):
                request.resolve(Answer(status, build({})))
                return None
            # It repeats a create staged earlier in this group: answer after the commit.
            return _Ready(request, status, build, frozenset(), writes=False)
        shared.records.update(trial.records)
        return _Ready(request, status, build, frozenset(
            (o.originator_id, o.version) for o in trial.outcomes if o.appended))

    def _alone(self, request: _Request) -> None:
        try:
            request.resolve(self.service.append(
                request.appends, recorded_by=request.recorded_by, idempotency_key=request.key,
                fingerprint=request.fingerprint))
        except BaseException as error:
            request.resolve(error=error)
