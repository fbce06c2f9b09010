"""Batches large enough that the PostgreSQL recorder copies them (COPY) instead of inserting:
the log, its seals and the answers must be what the insert path gives, on both backends."""

import json
from typing import Any

from eventsourcing.domain import Aggregate

from infra.bootstrap import Container
from infra.postgres import SealingPostgresRecorder
from tests.support.data import TEST_WRITER

NDJSON = "application/x-ndjson"
LARGE = SealingPostgresRecorder.copy_threshold + 37


def firms(start: int, count: int) -> bytes:
    return "\n".join(json.dumps({"type": "firms", "body": {
        "id": f"firm-{n}", "name": f"Firm {n}", "hq_country": "SG"}})
        for n in range(start, start + count)).encode()


def post_batch(client: Any, writer: dict[str, str], body: bytes, **headers: str) -> Any:
    return client.post("/v1/events:batch", content=body,
                       headers={**writer, "Content-Type": NDJSON, **headers})


class TestLargeBatches:
    def test_positions_continue_gap_free_across_copied_and_inserted_commits(
        self, client, writer, as_role, container: Container
    ):
        small = post_batch(client, writer, firms(0, 3))
        large = post_batch(client, writer, firms(3, LARGE))
        single = client.post("/v1/firms", json={"id": "firm-x", "name": "X", "hq_country": "DE"},
                             headers=writer)
        again = post_batch(client, writer, firms(3 + LARGE, LARGE))

        assert [r.status_code for r in (small, large, single, again)] == [201] * 4
        assert large.json()["positions"] == list(range(4, 4 + LARGE))
        assert single.json()["position"] == 4 + LARGE
        assert again.json()["positions"] == list(range(5 + LARGE, 5 + 2 * LARGE))
        # every event of a commit is recorded at its commit's one database time
        assert len({r["recorded_at"] for r in large.json()["results"]}) == 1

        entries = list(container.store.iter_entries())
        assert [e.position for e in entries] == list(range(1, 5 + 2 * LARGE))
        # the library reads the copied events in notification order, as it wrote the others
        notifications = container.ledger.recorder.select_notifications(1, limit=10 * LARGE)
        assert [(n.originator_id, n.originator_version) for n in notifications] == [
            (e.originator_id, e.originator_version) for e in entries]
        assert [n.state for n in notifications] == [e.state for e in entries]
        verification = client.post("/v1/integrity/verification",
                                    headers=as_role("auditor")).json()
        assert (verification["ok"], verification["verified_through"]) == (True, 4 + 2 * LARGE)

    def test_copied_events_load_as_the_library_stored_them(self, client, writer, container):
        assert post_batch(client, writer, firms(0, LARGE)).status_code == 201
        record = container.ledger.get_record("firm", f"firm-{LARGE - 1}")
        assert isinstance(record, Aggregate)
        assert (record.version, record.state.original["name"]) == (1, f"Firm {LARGE - 1}")

    def test_a_large_batch_whose_records_were_created_meanwhile_is_retried_whole(
        self, client, writer, container: Container
    ):
        # Staged against an empty log, then another writer creates one of its records before
        # the commit: the copy conflicts, nothing of it stays, and the retry sees the record.
        from infra.service import AppendService

        service = AppendService(container)
        ledger = container.ledger
        stage = ledger.stage
        raced = []

        def stage_then_race(appends: Any, **kwargs: Any) -> Any:
            staged = stage(appends, **kwargs)
            if not raced:
                raced.append(True)
                assert post_batch(client, writer, firms(5, 1)).status_code == 201
            return staged

        from api.appends import parse_batch_line

        lines = firms(0, LARGE).decode().splitlines()
        appends = [parse_batch_line(line, n) for n, line in enumerate(lines, 1)]
        ledger.stage = stage_then_race  # type: ignore[method-assign]
        try:
            answer = service.append(appends, recorded_by=TEST_WRITER, batch=True)
        finally:
            ledger.stage = stage  # type: ignore[method-assign]
        assert (answer.status, answer.body["count"], answer.body["appended"]) == (
            201, LARGE, LARGE - 1)
        entries = list(container.store.iter_entries())
        assert [e.position for e in entries] == list(range(1, LARGE + 1))
        assert len({(e.originator_id, e.originator_version) for e in entries}) == LARGE

    def test_a_refused_large_batch_leaves_no_trace_and_answers_as_before(
        self, client, writer, container
    ):
        body = firms(0, LARGE) + b"\n" + json.dumps({"type": "firms", "body": {
            "id": "late", "name": "Late", "hq_country": "SG", "parent_firm_id": "nobody"}}
        ).encode()
        refused = post_batch(client, writer, body)
        assert refused.status_code == 422
        assert refused.json()["errors"] == [{
            "loc": ["body", LARGE + 1, "body", "parent_firm_id"],
            "field": f"body.{LARGE + 1}.body.parent_firm_id",
            "msg": "no firm with id 'nobody'", "type": "unknown_reference"}]
        assert container.store.head() is None

    def test_an_idempotent_large_batch_is_answered_again_from_its_stored_answer(
        self, client, writer
    ):
        first = post_batch(client, writer, firms(0, LARGE), **{"Idempotency-Key": "bulk-1"})
        second = post_batch(client, writer, firms(0, LARGE), **{"Idempotency-Key": "bulk-1"})
        assert (first.status_code, second.status_code) == (201, 201)
        assert second.headers["Idempotent-Replayed"] == "true"
        assert second.json() == first.json()
