"""The projection runner as a process would run it: in the background, one leader at a time."""

import json
import threading
import time

import pytest

import infra.runner as runner_module
from api.appends import parse_batch_line
from domain.application import Append
from infra.findings_store import FindingsStore
from infra.runner import ProjectionRunner
from infra.service import AppendService
from infra.workers import Workers
from tests.support.data import TEST_WRITER, record_world


def _wait_until(condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class TestRunnersFollowingTheLog:
    def test_two_runners_on_one_database_leave_the_same_rows_as_a_rebuild(
        self, client, writer, container
    ):
        # Step 1: a second runner joins the one the app runs in the background.
        second = Workers(container, poll_interval=0.05)
        second.start()
        try:
            # Step 2: the world and then a correction are recorded.
            record_world(client, writer)
            answer = client.post("/v1/shipments/ship-h20-0501/corrections", headers=writer,
                                 json={"quantity": 1200, "reason": "invoice"}).json()
            store = FindingsStore(container.store.dialect)
            _wait_until(lambda: store.tracking("findings") >= answer["position"])
        finally:
            second.stop()
        # Step 3: what they wrote equals a rebuild from zero.
        incremental = store.findings(position=answer["position"])
        rows_before = store.open_findings()
        outbox = f"SELECT * FROM {container.store.dialect.outbox_table} ORDER BY seq"
        messages = store._rows(outbox)
        assert store.last_announced() == answer["position"]
        ProjectionRunner(container).rebuild()
        assert store.findings(position=answer["position"]) == incremental
        assert sorted(map(repr, store.open_findings())) == sorted(map(repr, rows_before))
        # Step 4: the rebuild announced nothing again.
        assert store._rows(outbox) == messages
        assert any("1200 nvidia-h20" in f.explanation for f in incremental)

    def test_only_one_postgres_runner_leads(self, container, database_url):
        if not database_url.startswith("postgres"):
            pytest.skip("leadership by advisory lock is PostgreSQL's; SQLite runners poll")
        first = container.backend.waiter("findings", 0.05)
        second = container.backend.waiter("findings", 0.05)
        try:
            assert first.lead() is True
            assert second.lead() is False
            # The leader's connection dies: the other takes over.
            first.close()
            _wait_until(second.lead, timeout=5)
        finally:
            first.close()
            second.close()

    def test_a_stopped_worker_thread_ends_promptly(self, container):
        workers = Workers(container, poll_interval=0.05)
        workers.start()
        started = time.monotonic()
        workers.stop()
        assert not workers.thread.is_alive()
        assert time.monotonic() - started < 5
        assert isinstance(workers.stop_event, threading.Event)


class TestBatchesOfTheRunner:
    def test_a_batch_ends_on_a_commit_and_no_event_is_read_twice(self, container, monkeypatch):
        # Step 1: three commits of 3, 3 and 1 events.
        service = AppendService(container)
        for commit in _commits_of([3, 3, 1]):
            service.append(commit, recorded_by=TEST_WRITER, batch=True)
        # Step 2: a runner with batches of 2 counts the events it reads.
        read: list[int] = []
        read_events = runner_module.read_events

        def counting(store, after, limit):
            page = read_events(store, after, limit)
            read.extend(e.position for e in page)
            return page

        monkeypatch.setattr("infra.runner.read_events", counting)
        runner = ProjectionRunner(container, batch_size=2)
        taken = []
        while size := runner.step():
            taken.append(size)
        # Step 3: the first batch ran to the end of its commit; the second, reaching the
        # head, took the rest; every event was read once.
        assert taken == [3, 4]
        assert read == list(range(1, 8))
        assert FindingsStore(container.store.dialect).tracking("findings") == 7


def _commits_of(sizes: list[int]) -> list[list[Append]]:
    """Commits of firms, `sizes[i]` firms in commit i."""
    lines, n = [], 0
    for size in sizes:
        commit = []
        for _ in range(size):
            n += 1
            body = {"id": f"firm-{n}", "name": f"Firm {n}", "hq_country": "SG"}
            commit.append(parse_batch_line(json.dumps({"type": "firms", "body": body}), n))
        lines.append(commit)
    return lines


def _append_one_commit_each(container, commits: list[list[Append]]) -> None:
    """Append each as a commit of its own. Events sharing a recorded_at are one commit to the
    projection, and SQLite's clock counts milliseconds, so two appends in one millisecond
    would be one: before the next append, wait for the database clock to pass the last
    recorded_at (a commit's recorded_at is the later of the clock and the last one's)."""
    service, dialect = AppendService(container), container.store.dialect
    for commit in commits:
        service.append(commit, recorded_by=TEST_WRITER, batch=True)
        last = container.store.head().recorded_at
        while True:
            with dialect.transaction(commit=False) as cursor:
                if dialect.db_now(cursor) > last:
                    break


class TestWritingBehindTheComputing:
    def test_a_failed_write_drops_what_was_computed_after_it_and_the_runner_recovers(
        self, container
    ):
        # Step 1: four commits of two events, each recorded at its own moment, and a runner
        # (batches of two events: one commit each) whose second write fails once.
        _append_one_commit_each(container, _commits_of([2, 2, 2, 2]))
        assert len({e.recorded_at for e in container.store.entries(after=0, limit=8)}) == 4
        runner = ProjectionRunner(container, batch_size=2)
        store = FindingsStore(container.store.dialect)
        writes: list[tuple[int, int]] = []
        write = runner.findings.write

        def failing_once(name, seen, reached, commits):
            writes.append((seen, reached))
            if len(writes) == 2:
                raise RuntimeError("the database went away")
            return write(name, seen, reached, commits)

        runner.findings.write = failing_once  # type: ignore[method-assign]
        # Step 2: the failure surfaces from the catch-up, with only the first batch committed:
        # the third batch, computed while the second was being written, was never written.
        with pytest.raises(RuntimeError, match="went away"):
            runner.catch_up()
        assert writes == [(0, 2), (2, 4)]
        assert store.tracking("findings") == 2
        assert runner.projection is None
        # Step 3: the same runner reloads from what was committed and finishes the log.
        assert runner.catch_up() == 8
        assert writes[2:] == [(2, 4), (4, 6), (6, 8)]
        assert store.tracking("findings") == 8
        assert store.last_announced() == 8
