"""The projection runner: follows the sealed log by position and keeps the findings table.

Batches of `batch_size` events (more when a commit runs past it: a batch never ends inside a
commit) are processed per transaction, with the tracking row in the same transaction (exactly
once; a crash resumes from the last committed batch). On
PostgreSQL the runner sleeps on LISTEN/NOTIFY with a polling fallback; on SQLite it polls. On
either, only the holder of the projection's lead works (infra.lead: an advisory lock, a lock
file beside the SQLite database): another process takes over when it dies, and a one-off
catch-up (the demo, the posture and replay commands) waits for the leader instead of racing it.

A subject whose evaluation raises does not stop the runner: the projection keeps its last
good rows, and its alarm (component `projection`, key `<subject_type>/<subject_id>`) is raised
in the transaction of the batch that met it, and cleared in the one that evaluates it again.
"""

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress

import structlog

from infra.findings_store import FindingsStore, TrackingConflictError
from infra.gc_pause import gc_paused
from infra.needs import DatabaseNeeds
from infra.replay import KIND_AND_TYPE, decode_state, replay_world
from infra.store import LogStore, page_of_log
from projections.findings import (
    PROJECTION_NAME,
    Commit,
    FindingsProjection,
    LogEvent,
    commits,
    subject_key,
)

log = structlog.get_logger("chipledger.runner")

Progress = Callable[[int, int], None]


def read_events(store: LogStore, after: int, limit: int) -> list[LogEvent]:
    """The next `limit` sealed events after a position, as the projection takes them: only
    what it folds and groups by (no hashes, no ids), each state decoded once."""
    d = store.dialect
    with d.transaction(commit=False) as cursor:
        cursor.execute(d.sql(page_of_log(d, "s.position, s.recorded_at, e.topic, e.state",
                                         upto=False)), (after, limit))
        rows = cursor.fetchall()
    events = []
    for row in rows:
        kind, event_type = KIND_AND_TYPE[row["topic"]]
        payload = decode_state(row["state"])
        events.append(LogEvent(row["position"], d.from_db_time(row["recorded_at"]), kind,
                               payload["record_id"], event_type, payload["data"]))
    return events


def commit_boundary(events: list[LogEvent], size: int) -> int | None:
    """The first index at or past `size` where a new commit starts, if the events read
    reach one: a batch never ends inside a commit."""
    for i in range(max(size, 1), len(events)):
        if events[i].recorded_at != events[i - 1].recorded_at:
            return i
    return None


def _log_subjects(done: list[Commit]) -> None:
    """Once written: each subject that failed, and each that evaluates again."""
    for commit in done:
        for failure in commit.failed:
            log.error("projection_subject_failed", subject=failure.key,
                      firm_id=failure.firm_id, position=commit.position, reason=failure.reason)
        for subject in commit.recovered:
            log.info("projection_subject_recovered", subject=subject_key(subject),
                     position=commit.position)


class ProjectionRunner:
    name = PROJECTION_NAME

    def __init__(self, needs: DatabaseNeeds, *, batch_size: int = 2000,
                 poll_interval: float = 0.5) -> None:
        self.store = needs.store
        self.backend = needs.backend
        self.findings = FindingsStore(needs.store.dialect, needs.alarms)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.projection: FindingsProjection | None = None
        self.position = 0
        self.ahead: list[LogEvent] = []  # read past the last batch, after `position`
        self.writer: ThreadPoolExecutor | None = None
        self.writing: Future[None] | None = None  # the last batch's write, if not settled

    # one process's work -------------------------------------------------------------------------

    def load(self) -> None:
        """Rebuild the in-memory world up to the committed tracking position."""
        position = self.findings.tracking(self.name)
        world, _ = replay_world(self.store, position)  # the replays' fold: one way to read it
        projection = FindingsProjection(world)
        projection.restore(self.findings.open_findings(), self.findings.open_pieces(),
                           self.findings.failing_subjects())
        projection.announced_through = self.findings.last_announced()
        self.projection, self.position = projection, position
        log.info("projection_loaded", projection=self.name, position=position)

    def step(self) -> int:
        """Process one batch; returns how many events it took (0: caught up, and every
        batch taken is committed).

        A batch's rows are written in a thread while the next batch is computed: the write
        is mostly waiting on the database, the computing is Python. Each write waits for the
        one before it, so batches still commit in order, one transaction each; when one
        fails, the batches computed after it are dropped with the memory, which reloads."""
        if self.projection is None:
            self.ahead = []
            with gc_paused():
                self.load()
        assert self.projection is not None
        events = self._next_batch()  # a failed read leaves the memory as it was
        try:
            if not events:
                self._settle()
                return 0
            with gc_paused():
                done = [self.projection.apply_commit(g, owned=True) for g in commits(events)]
            self._settle()
            self.writing = self._writer().submit(self._write, self.position,
                                                 events[-1].position, done)
        except BaseException:
            self._drop()
            raise
        self.position = events[-1].position
        return len(events)

    def _write(self, seen: int, reached: int, done: list[Commit]) -> None:
        with gc_paused():
            self.findings.write(self.name, seen, reached, done)
        _log_subjects(done)

    def _writer(self) -> ThreadPoolExecutor:
        if self.writer is None:
            self.writer = ThreadPoolExecutor(1, thread_name_prefix="projection-writer")
        return self.writer

    def _settle(self) -> None:
        """Wait for the batch being written; its error, if any, is raised here."""
        writing, self.writing = self.writing, None
        if writing is not None:
            writing.result()

    def _drop(self) -> None:
        """Memory ran ahead of the database: wait out any write, reload next time."""
        with suppress(BaseException):
            self._settle()
        self.projection = None

    def close(self) -> None:
        """Settle the last write and stop the writer thread (the memory is dropped)."""
        self._drop()
        self._stop_writer()

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.shutdown()
            self.writer = None

    def _next_batch(self) -> list[LogEvent]:
        """At least `batch_size` events ending on a commit boundary, or all up to the head.
        Events read past the boundary are kept for the next batch, not read again."""
        ahead = self.ahead
        while True:
            cut = commit_boundary(ahead, self.batch_size)
            if cut is not None:
                self.ahead = ahead[cut:]
                return ahead[:cut]
            page = read_events(self.store, ahead[-1].position if ahead else self.position,
                               self.batch_size)
            ahead = ahead + page
            if len(page) < self.batch_size:  # the head: commits are visible whole
                self.ahead = []
                return ahead

    def catch_up(self, progress: Progress | None = None) -> int:
        head = self.store.head()
        target = head.position if head else 0
        try:
            while self.step():
                if progress:
                    progress(self.position, target)
        finally:
            self._stop_writer()  # idle until the next catch-up: no thread left behind
        return self.position

    def project_to_head(self, progress: Progress | None = None, *,
                        patience: float = 60.0) -> int:
        """Bring the read model to the head of the log as it is now: as the leader when no
        runner leads this database, otherwise by waiting for the one that does (running a
        second runner beside it would race it). Gives up when the leader does not move for
        `patience` seconds."""
        lead = self.backend.lead(self.name)
        head = self.store.head()
        target = head.position if head else 0
        reached, moved_at = -1, time.monotonic()
        try:
            while not lead.take():
                position = self.findings.tracking(self.name)
                if position >= target:
                    return position
                if progress:
                    progress(position, target)
                if position != reached:
                    reached, moved_at = position, time.monotonic()
                elif time.monotonic() - moved_at > patience:
                    raise LeaderStalledError(self.name, position, target, patience)
                time.sleep(min(self.poll_interval, 0.2))
            return self.catch_up(progress)
        finally:
            lead.release()

    def rebuild(self, progress: Progress | None = None) -> int:
        """Drop the read model and build it again from position 0."""
        self._drop()
        self.findings.clear(self.name)
        return self.catch_up(progress)

    def rebuild_as_leader(self, progress: Progress | None = None) -> int:
        """Rebuild holding the projection's lead, so that no running runner writes the rows
        this one drops and refills; refuses while another process leads."""
        lead = self.backend.lead(self.name)
        if not lead.take():
            raise ProjectionLedError(self.name)
        try:
            return self.rebuild(progress)
        finally:
            lead.release()

    # running for ever ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Follow the log until `stop` is set. Errors are logged and the runner starts over."""
        waiter = self.backend.waiter(self.name, self.poll_interval)
        try:
            while not stop.is_set():
                if not waiter.lead():
                    stop.wait(self.poll_interval)
                    continue
                try:
                    if self.step():
                        continue
                except TrackingConflictError:
                    log.warning("projection_moved_on_elsewhere", projection=self.name)
                    continue
                except Exception:
                    log.exception("projection_batch_failed", projection=self.name,
                                  position=self.position)
                    stop.wait(min(5.0, self.poll_interval * 4))
                    continue
                waiter.wait(stop)
        finally:
            waiter.close()
            self.close()


class ProjectionLedError(RuntimeError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"a running server or worker leads the {name} projection of this database: stop "
            "it before rebuilding (a rebuild drops and refills the rows it keeps)")


class LeaderStalledError(RuntimeError):
    def __init__(self, name: str, position: int, target: int, patience: float) -> None:
        super().__init__(
            f"the {name} projection is led by another process on this database, which has "
            f"not moved from position {position} (of {target}) for {patience:g} s; see its "
            "log, or stop it to let this one lead")
