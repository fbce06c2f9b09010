"""A refused commit writes nothing, whatever step of the write fails.

A failure is injected before and after each step of the write path in turn (the events insert,
reading the chain's head, hashing, the seal rows, the side tables, each answer, the
idempotency records), on single appends, group-committed appends, batches (inserted and
copied) and webhook endpoint changes. After each, the head has not moved and no table written
in the events' transaction holds a row more or a value changed; the same request then succeeds
at the next position and the chain verifies.

The PostgreSQL recorder of eventsourcing 9.5 re-raises an exception from inside its
transaction block only after committing it; on that path a failure after the insert left the
events committed (a webhook registration answered 500 and was recorded all the same).
"""

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

import infra.postgres
import infra.postgres.recorder
import infra.sealing
import infra.sqlite
import infra.sqlite.recorder
from api.app import create_app
from api.appends import parse_batch_line
from domain.application import Append
from infra.bootstrap import Container, bootstrap
from infra.group_commit import GroupCommitter, _Request
from infra.postgres import PostgresDialect, SealingPostgresRecorder
from infra.seal import RecordedBy
from infra.service import AnswerBuilder, AppendService, ReadService
from infra.settings import Settings
from infra.sqlite import SealingSQLiteRecorder, SQLiteDialect
from infra.webhooks import Webhooks

WRITER = RecordedBy("k-writer", "ingest", "writer")
OTHER_WRITER = RecordedBy("k-other", "clerk", "writer")
ADMIN = RecordedBy("k-admin", "ops", "admin")
LARGE = SealingPostgresRecorder.copy_threshold + 5
URL = "http://127.0.0.1:9/hook"


class InjectedFaultError(RuntimeError):
    """Raised by a step of the write path on the test's behalf."""


@dataclass(frozen=True)
class Step:
    label: str
    targets: tuple[tuple[Any, str], ...]  # every place the step's function is looked up


def _function_in_modules(name: str) -> tuple[tuple[Any, str], ...]:
    return tuple((module, name) for module in (infra.sealing, infra.postgres.recorder,
                                                    infra.sqlite.recorder)
                 if hasattr(module, name))


STEPS = [
    Step("the events insert", ((SealingPostgresRecorder, "_insert_stored_events"),
                               (SealingPostgresRecorder, "_copy_stored_events"),
                               (SealingSQLiteRecorder, "_insert_stored_events"))),
    Step("reading the chain's head", _function_in_modules("seal_head")),
    Step("hashing the chain", _function_in_modules("seal_batch")),
    Step("the seal rows", ((PostgresDialect, "insert_seals"), (PostgresDialect, "copy_seals"),
                           (SQLiteDialect, "insert_seals"))),
    Step("the side tables", _function_in_modules("write_side_tables")),
    Step("building each answer", ((AnswerBuilder, "__call__"),)),
    Step("the idempotency records", _function_in_modules("store_answers")),
]


@contextmanager
def failing(step: Step, when: str) -> Iterator[list[str]]:
    """Every function of `step` raises, before or after doing its work; yields a list that
    says whether it ran."""
    ran: list[str] = []

    def wrap(original: Callable[..., Any]) -> Callable[..., Any]:
        def faulty(*args: Any, **kwargs: Any) -> Any:
            ran.append(step.label)
            if when == "after":
                original(*args, **kwargs)
            raise InjectedFaultError(f"{step.label}, {when}")

        return faulty

    with pytest.MonkeyPatch.context() as patch:
        for owner, name in step.targets:
            patch.setattr(owner, name, wrap(getattr(owner, name)))
        yield ran


def firm_lines(first: int, count: int) -> list[Append]:
    return [parse_batch_line(json.dumps({"type": "firms", "body": {
        "id": f"firm-{n}", "name": f"Firm {n}", "hq_country": "SG"}}), n)
        for n in range(first, first + count)]


# The requests, each sent the same way after every failure -------------------------------------


def single_append(container: Container, hooks: Webhooks) -> None:
    AppendService(container).append(firm_lines(100, 1), recorded_by=WRITER,
                                    idempotency_key="one", fingerprint="f-one")


def group_of_three(container: Container, hooks: Webhooks) -> None:
    requests = [_Request(firm_lines(200, 1), WRITER, "g-1", "f-g1"),
                _Request(firm_lines(201, 1), OTHER_WRITER, "g-1", "f-g2"),
                _Request([parse_batch_line(json.dumps({"type": "firms/changes", "id": "firm-0",
                          "body": {"effective_from": "2025-06-01", "name": "Renamed"}}), 1)],
                         ADMIN, None, "")]
    GroupCommitter(AppendService(container))._commit(requests)
    for request in requests:
        request.outcome()  # raises what the commit raised


def small_batch(container: Container, hooks: Webhooks) -> None:
    AppendService(container).append(firm_lines(300, 3), recorded_by=WRITER, batch=True,
                                    idempotency_key="batch", fingerprint="f-batch")


def large_batch(container: Container, hooks: Webhooks) -> None:
    AppendService(container).append(firm_lines(1000, LARGE), recorded_by=WRITER, batch=True,
                                    idempotency_key="bulk", fingerprint="f-bulk")


def endpoint_registration(container: Container, hooks: Webhooks) -> None:
    hooks.create(URL, ["posture.changed"], "registered in a test", recorded_by=ADMIN)


def endpoint_disabling(container: Container, hooks: Webhooks) -> None:
    hooks.disable(hooks.endpoints()[0].endpoint_id, "a test", recorded_by=ADMIN)


def secret_rotation(container: Container, hooks: Webhooks) -> None:
    hooks.rotate(hooks.endpoints()[0].endpoint_id, recorded_by=ADMIN)


REQUESTS = {"a single append": (single_append, 1), "a group commit": (group_of_three, 3),
            "a batch": (small_batch, 3), "a copied batch": (large_batch, LARGE),
            "an endpoint registration": (endpoint_registration, 1),
            "an endpoint disabling": (endpoint_disabling, 1),
            "a secret rotation": (secret_rotation, 1)}


def tables_of(container: Container) -> list[str]:
    d = container.store.dialect
    return [d.events_table, d.seals_table, d.idempotency_table, d.endpoints_table,
            d.secrets_table]


def snapshot(container: Container) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table a commit writes."""
    d = container.store.dialect
    found = {}
    with d.transaction(commit=False) as cursor:
        for table in tables_of(container):
            cursor.execute(f"SELECT * FROM {table}")
            rows = [tuple(r.values()) if isinstance(r, dict) else tuple(r)
                    for r in cursor.fetchall()]
            found[table] = sorted(rows, key=repr)
    return found


@pytest.fixture
def hooked(database_url: str, tmp_path: Any) -> Iterator[tuple[Container, Webhooks]]:
    settings = Settings(database_url=database_url, webhook_allow_local=True,
                        signing_key_file=str(tmp_path / "key.pem"))
    container = bootstrap(settings)
    try:
        yield container, Webhooks(container)
    finally:
        container.close()


class TestAFailureAtAnyStepOfTheWrite:
    @pytest.mark.parametrize("name", list(REQUESTS))
    def test_leaves_the_head_and_every_table_as_they_were(self, hooked, name):
        container, hooks = hooked
        send, events = REQUESTS[name]
        # Step 1: a firm and an endpoint to append to, recorded without faults.
        AppendService(container).append(firm_lines(0, 1), recorded_by=WRITER)
        hooks.create(URL, ["ledger.appended"], None, recorded_by=ADMIN)
        before = snapshot(container)
        head = container.store.head()
        assert head is not None
        # Step 2: the request fails at each step in turn, before and after the step's work.
        for step in STEPS:
            for when in ("before", "after"):
                with failing(step, when) as ran, pytest.raises(InjectedFaultError):
                    send(container, hooks)
                assert ran, f"{step.label} is not a step of {name}"
                assert snapshot(container) == before, f"failing {when} {step.label} wrote"
        # Step 3: without a fault the same request is written at the next positions.
        send(container, hooks)
        after = container.store.head()
        assert after is not None
        assert after.position == head.position + events
        assert ReadService(container).verify().ok


class TestARegistrationThatFailsInsideItsTransaction:
    def test_answers_500_and_records_nothing(self, hooked):
        container, _ = hooked
        admin = {"Authorization": "Bearer " + _admin_key(container)}
        with TestClient(create_app(container=container),
                        raise_server_exceptions=False) as client:
            # Step 1: the endpoint's own rows fail to be written, after its event was.
            with failing(Step("the side tables", _function_in_modules("write_side_tables")),
                         "after") as ran:
                answer = client.post("/v1/webhooks/endpoints", headers=admin,
                                     json={"url": URL, "event_types": ["posture.changed"]})
            assert ran
            assert answer.status_code == 500
            # Step 2: neither the event nor the endpoint exists.
            assert client.get("/v1/events", headers=admin).json()["events"] == []
            assert client.get("/v1/webhooks/endpoints", headers=admin).json() == {
                "endpoints": []}
            assert client.get("/v1/integrity", headers=admin).json()["head_position"] == 0


def _admin_key(container: Container) -> str:
    from infra.keys import KeyRing, Role

    return KeyRing(container.store).create(Role.ADMIN)[1]
