"""Webhooks (api.md, Webhooks; architecture.md, Webhooks) against a real HTTP receiver, on SQLite
and on PostgreSQL.

The receiver is a ThreadingHTTPServer on 127.0.0.1 that verifies every delivery with the
`standardwebhooks` package, answers from a script (status, delay, Retry-After) and can be down
(its port bound but not listening). Most tests drive the projection runner and a Dispatcher by
hand, so each step is deterministic; one runs the app's own background workers end to end.
"""

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from api.app import create_app
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.logging import configure_logging
from infra.runner import ProjectionRunner
from infra.settings import Settings
from infra.webhooks import MAX_ATTEMPTS, Dispatcher
from tests.support.data import ALIBABA, H20, H20_RULE
from tests.support.webhooks import (
    POSTURE,
    TIMEOUT,
    Api,
    Endpoint,
    Headers,
    Pump,
    Receiver,
    Reply,
    assert_fifo_per_firm,
    cure,
    firm,
    kill_9_once,
    parse,
    record_rule,
    seq,
    shipment,
    subscribe,
    utc_now,
    violate,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]


# Fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    # These tests follow single deliveries through the retry schedule: the circuit breaker
    # (tests/infra/webhooks/test_breaker.py) is kept out of their way.
    return settings.model_copy(update={"webhook_allow_local": True, "webhook_timeout": TIMEOUT,
                                       "webhook_backoff_scale": 0.001,
                                       "webhook_breaker_failures": 1000})


@pytest.fixture
def hook_container(hook_settings: Settings) -> Iterator[Container]:
    built = bootstrap(hook_settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def keys(hook_container: Container) -> dict[Role, Headers]:
    ring = KeyRing(hook_container.store)
    return {role: {"Authorization": f"Bearer {ring.create(role)[1]}"} for role in Role}


@pytest.fixture
def manual(hook_container: Container, keys: dict[Role, Headers]) -> Iterator[Api]:
    """The API without background workers: tests project and dispatch by hand."""
    with TestClient(create_app(container=hook_container, workers=False)) as client:
        yield Api(client, keys)


@pytest.fixture
def live(hook_container: Container, keys: dict[Role, Headers]) -> Iterator[Api]:
    """The API with its background workers: the projection runner and the dispatcher."""
    with TestClient(create_app(container=hook_container)) as client:
        yield Api(client, keys)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    built = Receiver()
    try:
        yield built
    finally:
        built.stop()


@pytest.fixture
def endpoint(manual: Api, receiver: Receiver) -> Endpoint:
    """An endpoint for posture changes at the receiver, registered through the manual API."""
    return subscribe(manual, receiver)


@pytest.fixture
def dispatcher(hook_container: Container) -> Iterator[Dispatcher]:
    built = Dispatcher(hook_container, timeout=TIMEOUT, backoff_scale=0.001)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def pump(hook_container: Container, dispatcher: Dispatcher) -> Pump:
    return Pump(hook_container, dispatcher)


# 1. Endpoint management --------------------------------------------------------------------------


class TestEndpointManagement:
    # As configured in production (JSON, with its redaction step), and unconfigured (no
    # redaction at all: nothing logs a secret in the first place).
    @pytest.mark.parametrize("log_format", ["json", "unconfigured"])
    def test_secrets_are_shown_once_and_changes_are_recorded_in_the_log(
        self, manual: Api, receiver: Receiver, pump: Pump, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, restore_logging: None, log_format: str,
    ) -> None:
        api = manual
        if log_format == "json":
            configure_logging("json", "debug")
        capsys.readouterr()
        receiver.start()
        with caplog.at_level(logging.DEBUG):
            # Step 1: creating an endpoint answers its id and a whsec_ secret, once.
            created = api.endpoint(receiver.url, (POSTURE, "ledger.appended"), "compliance desk")
            secret = created["secret"]
            assert created["id"].startswith("wh-")
            assert secret.startswith("whsec_")
            assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
            assert (created["url"], created["event_types"], created["description"],
                    created["enabled"], created["disabled_at"]) == (
                receiver.url, ["ledger.appended", POSTURE], "compliance desk", True, None)
            receiver.secrets = [secret]

            # Step 2: listing shows the endpoint without any secret.
            listed = api.endpoints()
            assert [e["id"] for e in listed] == [created["id"]]
            assert {k: v for k, v in created.items() if k != "secret"} == listed[0]

            # Step 3: a rotation answers the new secret once; deliveries and the rotation
            # are exercised so that their logs are captured too.
            rotated = api.client.post(
                f"/v1/webhooks/endpoints/{created['id']}/secret-rotation", headers=api.admin)
            assert rotated.status_code == 200, rotated.text
            new_secret = rotated.json()["secret"]
            assert rotated.json()["id"] == created["id"]
            assert new_secret.startswith("whsec_")
            assert new_secret != secret
            receiver.secrets = [secret, new_secret]
            record_rule(api)
            api.record("firms", firm(1))
            violate(api, 1)
            pump.until(lambda: len(api.deliveries(created["id"], "succeeded")) == 7)
            # Five appends since the endpoint (ledger.appended) and two posture changes.
            assert len(receiver.arrivals) == 7
            assert all(a.verified_by == (secret, new_secret) for a in receiver.arrivals)

            # Step 4: DELETE disables the endpoint; a second DELETE changes nothing.
            disabled = api.client.delete(f"/v1/webhooks/endpoints/{created['id']}",
                                         headers=api.admin)
            assert disabled.status_code == 200, disabled.text
            assert disabled.json()["enabled"] is False
            assert disabled.json()["disabled_reason"] == "disabled through the API"
            assert disabled.json()["disabled_at"] is not None
            again = api.client.delete(f"/v1/webhooks/endpoints/{created['id']}",
                                      headers=api.admin)
            assert again.json() == disabled.json()
            assert api.endpoints()[0]["enabled"] is False
            # Nothing is delivered to a disabled endpoint.
            cure(api, 1)
            pump.for_a_while(0.3)
            assert len(receiver.arrivals) == 7
            assert len(api.deliveries(created["id"])) == 7

            # Step 5: every answer that is not the creation or the rotation is free of
            # secrets: the list, the deliveries, the log and the export.
            events = api.events()
            export = api.client.get("/v1/exports", headers=api.admin)
            assert export.status_code == 200
            reads = [api.client.get("/v1/webhooks/endpoints", headers=api.admin).text,
                     api.client.get(f"/v1/webhooks/endpoints/{created['id']}/deliveries",
                                    headers=api.admin).text,
                     api.client.get(f"/v1/webhooks/endpoints/{created['id']}",
                                    headers=api.admin).text,
                     json.dumps(events), export.text]
        captured = capsys.readouterr()
        logged = captured.out + captured.err + caplog.text
        assert "webhook_endpoint_created" in logged
        assert "webhook_attempt" in logged
        for s in (secret, new_secret):
            for text in [*reads, logged]:
                assert s not in text
                assert s.removeprefix("whsec_") not in text

        # Step 6: the endpoint's history is in the log: created, rotated, disabled, with
        # fingerprints of the secrets (never the secrets).
        mine = [e for e in events if e["record_id"] == created["id"]]
        assert [(e["kind"], e["type"]) for e in mine] == [
            ("webhook_endpoint", "WebhookEndpointCreated"),
            ("webhook_endpoint", "WebhookSecretRotated"),
            ("webhook_endpoint", "WebhookEndpointDisabled")]
        fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:16]
        assert mine[0]["data"]["url"] == receiver.url
        assert sorted(mine[0]["data"]["event_types"]) == ["ledger.appended", POSTURE]
        assert mine[0]["data"]["secret_fingerprint"] == fingerprint
        assert mine[1]["data"]["secret_fingerprint"] == \
            hashlib.sha256(new_secret.encode()).hexdigest()[:16]
        assert mine[2]["data"]["reason"] == "disabled through the API"
        assert mine[2]["data"]["effective_from"] == date.today().isoformat()

    @pytest.mark.parametrize(("url", "kind"), [
        ("ftp://hooks.example.com/in", "url_scheme"),
        ("file:///etc/passwd", "url_scheme"),
        ("http://127.0.0.1:8080/hook", "url_local"),
        ("http://localhost:8080/hook", "url_local"),
        ("http://[::1]:8080/hook", "url_local"),
        ("http://10.1.2.3/hook", "url_local"),
        ("https://192.168.1.20/hook", "url_local"),
        ("http://169.254.169.254/latest/meta-data", "url_local"),
        ("http://0.0.0.0:8000/hook", "url_local"),
        ("http://[::ffff:127.0.0.1]/hook", "url_local"),
    ])
    def test_urls_must_be_http_and_not_local_unless_allowed(
        self, client: TestClient, admin: Headers, url: str, kind: str
    ) -> None:
        head = client.get("/v1/integrity", headers=admin).json()["head_position"]
        answer = client.post("/v1/webhooks/endpoints", headers=admin,
                             json={"url": url, "event_types": [POSTURE]})
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        [error] = answer.json()["errors"]
        assert (error["field"], error["type"]) == ("body.url", kind)
        # A refused request appends nothing and leaves no endpoint behind.
        assert client.get("/v1/integrity", headers=admin).json()["head_position"] == head
        assert client.get("/v1/webhooks/endpoints", headers=admin).json()["endpoints"] == []

    def test_a_public_address_is_accepted_without_allow_local(
        self, client: TestClient, admin: Headers
    ) -> None:
        answer = client.post("/v1/webhooks/endpoints", headers=admin,
                             json={"url": "https://93.184.215.14/hooks",
                                   "event_types": [POSTURE]})
        assert answer.status_code == 201, answer.text

    @pytest.mark.parametrize("body", [
        {"url": "http://127.0.0.1:9/hook", "event_types": ["posture.updated"]},
        {"url": "http://127.0.0.1:9/hook", "event_types": []},
        {"url": "http://127.0.0.1:9/hook"},
        {"url": "http://127.0.0.1:9/hook", "event_types": [POSTURE], "secret": "whsec_AAAA"},
    ])
    def test_bad_bodies_are_422(self, manual: Api, body: dict[str, Any]) -> None:
        answer = manual.client.post("/v1/webhooks/endpoints", headers=manual.admin, json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"]
        assert manual.endpoints() == []

    def test_only_admins_manage_webhooks(self, manual: Api, receiver: Receiver,
                                         endpoint: Endpoint) -> None:
        api = manual
        base = f"/v1/webhooks/endpoints/{endpoint['id']}"
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("POST", "/v1/webhooks/endpoints", {"url": receiver.url, "event_types": [POSTURE]}),
            ("GET", "/v1/webhooks/endpoints", None),
            ("DELETE", base, None),
            ("POST", f"{base}/secret-rotation", None),
            ("GET", f"{base}/deliveries", None),
            ("POST", f"{base}/recovery", {"since": "2025-01-01T00:00:00Z"}),
        ]
        for method, path, body in calls:
            for role in (Role.READER, Role.WRITER, Role.AUDITOR):
                answer = api.client.request(method, path, json=body, headers=api.keys[role])
                assert answer.status_code == 403, (method, path, role, answer.text)
            assert api.client.request(method, path, json=body).status_code == 401
        # Nothing changed: one endpoint, enabled, and a single event for it.
        assert [(e["id"], e["enabled"]) for e in api.endpoints()] == [(endpoint["id"], True)]
        assert [e["type"] for e in api.events() if e["record_id"] == endpoint["id"]] == [
            "WebhookEndpointCreated"]

    def test_unknown_endpoints_are_404(self, manual: Api) -> None:
        base = "/v1/webhooks/endpoints/wh-0000000000000000"
        for method, path, body in [("DELETE", base, None),
                                   ("POST", f"{base}/secret-rotation", None),
                                   ("GET", f"{base}/deliveries", None),
                                   ("POST", f"{base}/recovery",
                                    {"since": "2025-01-01T00:00:00Z"})]:
            answer = manual.client.request(method, path, json=body, headers=manual.admin)
            assert answer.status_code == 404, (method, path, answer.text)

    def test_bad_delivery_queries_and_recoveries_are_422(self, manual: Api,
                                                         receiver: Receiver) -> None:
        base = f"/v1/webhooks/endpoints/{manual.endpoint(receiver.url)['id']}"
        client, admin = manual.client, manual.admin
        assert client.get(f"{base}/deliveries", params={"status": "lost"},
                          headers=admin).status_code == 422
        for body in ({}, {"since": "yesterday"}, {"since": "2025-01-01T00:00:00Z", "until": 1}):
            answer = client.post(f"{base}/recovery", json=body, headers=admin)
            assert answer.status_code == 422, (body, answer.text)


# 2. Signatures, and a rotation (the app's own background dispatcher) -------------------------


class TestSignatures:
    def test_every_delivery_verifies_and_a_rotation_signs_with_both_secrets(
        self, live: Api, receiver: Receiver
    ) -> None:
        api = live
        receiver.start()
        created = subscribe(api, receiver)
        old = created["secret"]
        record_rule(api)
        api.record("firms", firm(1))

        # Step 1: a violation is announced (past dates restated, and from today on), signed
        # once with the endpoint's secret.
        first = violate(api, 1)
        wait_until(lambda: len(receiver.arrivals) == 2)
        assert receiver.ids() == [f"msg_{first['position']}_1", f"msg_{first['position']}_2"]
        for arrival in receiver.arrivals:
            assert arrival.verified_by == (old,)
            assert len(arrival.signatures) == 1
            assert arrival.signatures[0].startswith("v1,")
            assert abs(int(arrival.timestamp) - time.time()) < 60
            headers = {"webhook-id": arrival.webhook_id,
                       "webhook-timestamp": arrival.timestamp,
                       "webhook-signature": " ".join(arrival.signatures)}
            # Verification is not vacuous: another secret, a changed body or a changed id fail.
            with pytest.raises(WebhookVerificationError):
                Webhook("whsec_" + base64.b64encode(b"x" * 24).decode()).verify(
                    arrival.body, headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(arrival.body.replace(b"violation", b"compliant"), headers)
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(arrival.body, {**headers, "webhook-id": "msg_1_1"})

        # Step 2: a rotation. For 24 hours the old secret signs alongside the new one.
        rotated = api.client.post(f"/v1/webhooks/endpoints/{created['id']}/secret-rotation",
                                  headers=api.admin)
        assert rotated.status_code == 200, rotated.text
        new = rotated.json()["secret"]
        assert new != old
        receiver.secrets = [old, new]
        second = cure(api, 1)
        wait_until(lambda: len(receiver.arrivals) == 4)
        assert receiver.ids()[2:] == [f"msg_{second['position']}_1",
                                      f"msg_{second['position']}_2"]
        for arrival in receiver.arrivals[2:]:
            assert len(arrival.signatures) == 2
            headers = {"webhook-id": arrival.webhook_id,
                       "webhook-timestamp": arrival.timestamp,
                       "webhook-signature": " ".join(arrival.signatures)}
            # A receiver that knows only one of the two secrets verifies either way.
            assert Webhook(old).verify(arrival.body, headers) == arrival.payload
            assert Webhook(new).verify(arrival.body, headers) == arrival.payload
            assert arrival.verified_by == (old, new)
            assert arrival.payload["data"]["status"] == "compliant"
        wait_until(lambda: len(api.deliveries(created["id"], "succeeded")) == 4)


# 3. Down, then up: retries, order per firm, recovery ---------------------------------------------


class TestDownThenUp:
    def test_messages_pile_up_while_the_receiver_is_down_then_all_arrive_in_order(
        self, manual: Api, receiver: Receiver, pump: Pump, endpoint: Endpoint
    ) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        record_rule(api)
        for n in (1, 2, 3):
            api.record("firms", firm(n))
        # Step 1: three firms each get a violation, a cure and a second violation: six
        # messages a firm, interleaved between firms in the log.
        for n in (1, 2, 3):
            violate(api, n)
        for n in (1, 2, 3):
            cure(api, n)
        for n in (3, 2, 1):
            violate(api, n, "2025-07-01", suffix="b")

        # Step 2: the receiver is down. The first message of each firm fails and is retried
        # with backoff; the others wait behind it (order per firm).
        def first_ones_retried() -> bool:
            failed = api.deliveries(endpoint_id, "failed")
            return len(failed) == 3 and all(d["attempts"] >= 3 for d in failed)

        pump.until(first_ones_retried)
        assert receiver.arrivals == []
        failed = api.deliveries(endpoint_id, "failed")
        pending = api.deliveries(endpoint_id, "pending")
        assert len(failed) + len(pending) == 18
        assert sorted(d["ordering_key"] for d in failed) == ["firm-1", "firm-2", "firm-3"]
        for d in failed:
            firm_messages = [m for m in [*failed, *pending]
                             if m["ordering_key"] == d["ordering_key"]]
            assert seq(d["message_id"]) == min(seq(m["message_id"]) for m in firm_messages)
            assert d["status"] == "failed"
            assert d["last_status_code"] is None
            assert d["last_error"].startswith("ConnectError")
            assert len(d["history"]) == d["attempts"]
            assert [h["attempt"] for h in d["history"]] == list(range(1, d["attempts"] + 1))
            times = [parse(h["at"]) for h in d["history"]]
            assert times == sorted(times)
            for h in d["history"]:
                assert h["status_code"] is None
                assert h["error"].startswith("ConnectError")
                assert isinstance(h["latency_ms"], int)
                assert 0 <= h["latency_ms"] < 1000
            assert parse(d["next_attempt_at"]) > times[-1]
        for d in pending:
            assert (d["attempts"], d["history"], d["last_error"]) == (0, [], None)

        # Step 3: the receiver comes up, and fails its first two answers with 500.
        receiver.script.extend([Reply(500), Reply(500)])
        receiver.start()
        pump.until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 18)

        # Every message arrived, verified, acknowledged; in order per firm.
        deliveries = api.deliveries(endpoint_id)
        assert {d["status"] for d in deliveries} == {"succeeded"}
        assert receiver.acknowledged() == {d["message_id"] for d in deliveries}
        assert all(a.verified_by == (endpoint["secret"],) for a in receiver.arrivals)
        assert_fifo_per_firm(receiver.arrivals, deliveries)
        for firm_id in ("firm-1", "firm-2", "firm-3"):
            firm_ids = [a.webhook_id for a in receiver.arrivals
                        if a.payload["data"]["firm_id"] == firm_id]
            assert [seq(i) for i in firm_ids] == sorted(seq(i) for i in firm_ids)
            assert len(set(firm_ids)) == 6

        # The two messages answered 500 came again, with the same webhook-id and body.
        refused = [a for a in receiver.arrivals if a.reply.status == 500]
        assert len(refused) == 2
        for arrival in refused:
            again = [a for a in receiver.arrivals if a.webhook_id == arrival.webhook_id]
            assert [a.reply.status for a in again][-1] == 200
            assert all(a.body == arrival.body for a in again)
            history = next(d for d in deliveries
                           if d["message_id"] == arrival.webhook_id)["history"]
            codes = [h["status_code"] for h in history]
            assert codes[-2:] == [500, 200] or codes[-3:] == [500, 500, 200]
        # A delivery that failed while the receiver was down keeps its attempts: refused
        # connections, then the answer that succeeded.
        for d in deliveries:
            if d["message_id"] in {f["message_id"] for f in failed}:
                assert d["attempts"] == len(d["history"]) >= 4
                assert d["history"][0]["error"].startswith("ConnectError")
                assert (d["history"][-1]["status_code"], d["history"][-1]["error"]) == (200,
                                                                                      None)
                assert d["next_attempt_at"] is None
                assert d["last_status_code"] == 200
            else:
                assert d["history"][-1]["status_code"] == 200

    def test_recovery_requeues_failed_and_dead_deliveries(
        self, manual: Api, receiver: Receiver, hook_container: Container
    ) -> None:
        api = manual
        # A dispatcher whose three-day schedule shrinks to a fraction of a second.
        quick = Dispatcher(hook_container, timeout=TIMEOUT, backoff_scale=1e-6)
        pump = Pump(hook_container, quick)
        try:
            started = utc_now()
            endpoint_id = subscribe(api, receiver)["id"]
            receiver.default = Reply(500)
            receiver.start()
            record_rule(api)
            api.record("firms", firm(1))
            violate(api, 1)

            # Step 1: every attempt is answered 500: both messages die after the last try.
            pump.until(lambda: len(api.deliveries(endpoint_id, "dead")) == 2)
            dead = api.deliveries(endpoint_id, "dead")
            for d in dead:
                assert d["attempts"] == MAX_ATTEMPTS == 15
                assert [h["status_code"] for h in d["history"]] == [500] * 15
                assert d["next_attempt_at"] is None
                assert d["last_status_code"] == 500
            assert len(receiver.arrivals) == 30
            died = utc_now()

            # Step 2: a recovery since a moment after they died finds nothing to queue.
            time.sleep(0.01)
            assert api.recover(endpoint_id, utc_now()) == 0
            # A recovery since before queues both again.
            assert api.recover(endpoint_id, started) == 2
            assert api.deliveries(endpoint_id, "dead") == []
            requeued = api.deliveries(endpoint_id, "pending")
            assert [d["attempts"] for d in requeued] == [0, 0]
            assert all(parse(d["next_attempt_at"]) <= datetime.now(UTC) for d in requeued)

            # Step 3: the receiver asks for an hour's pause (Retry-After) on the first one.
            receiver.default = Reply(200)
            receiver.script.append(Reply(503, retry_after="3600"))
            pump.for_a_while(0.3)
            [waiting] = api.deliveries(endpoint_id, "failed")
            assert waiting["message_id"] == dead[0]["message_id"]
            assert parse(waiting["next_attempt_at"]) > datetime.now(UTC) + timedelta(minutes=59)
            assert len(receiver.arrivals) == 31  # nothing more: the second waits behind it

            # Step 4: a recovery since the deaths queues the failed one now; both arrive.
            assert api.recover(endpoint_id, died) == 1
            pump.until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 2)
            assert receiver.ids()[31:] == [d["message_id"] for d in dead]
            # Every attempt is in the history, those after the recovery too.
            first, second = api.deliveries(endpoint_id)
            assert [h["status_code"] for h in first["history"]] == [500] * 15 + [503, 200]
            assert [h["status_code"] for h in second["history"]] == [500] * 15 + [200]
            assert [h["attempt"] for h in first["history"]] == list(range(1, 18))
        finally:
            quick.close()


# 4. 410, a slow receiver, Retry-After ------------------------------------------------------------


class TestReceiverAnswers:
    def test_a_410_disables_the_endpoint(self, manual: Api, receiver: Receiver,
                                         pump: Pump, endpoint: Endpoint) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        receiver.script.append(Reply(410))
        receiver.start()
        record_rule(api)
        api.record("firms", firm(1))
        answer = violate(api, 1)
        pump.until(lambda: not api.endpoints()[0]["enabled"])

        [endpoint] = api.endpoints()
        assert endpoint["disabled_reason"] == "the receiver answered 410 Gone"
        assert endpoint["disabled_at"] is not None
        first, second = api.deliveries(endpoint_id)
        assert (first["message_id"], first["status"], first["attempts"],
                first["last_status_code"]) == (f"msg_{answer['position']}_1", "dead", 1, 410)
        assert first["next_attempt_at"] is None
        assert (second["status"], second["attempts"]) == ("pending", 0)
        disabled = [e for e in api.events() if e["record_id"] == endpoint_id]
        assert [e["type"] for e in disabled] == ["WebhookEndpointCreated",
                                                 "WebhookEndpointDisabled"]
        assert disabled[-1]["data"]["reason"] == "the receiver answered 410 Gone"
        assert disabled[-1]["position"] > answer["position"]
        # Nothing more is sent, nor fanned out to it.
        cure(api, 1)
        pump.for_a_while(0.3)
        assert receiver.ids() == [first["message_id"]]
        assert len(api.deliveries(endpoint_id)) == 2

    def test_nothing_is_sent_after_the_410_even_from_the_same_batch(
        self, manual: Api, receiver: Receiver, pump: Pump, endpoint: Endpoint
    ) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        receiver.default = Reply(410)
        receiver.start()
        record_rule(api)
        for n in (1, 2, 3):
            api.record("firms", firm(n))
            violate(api, n)
        # One step claims the first message of each firm, and answers the first with 410.
        pump.step()
        assert api.endpoints()[0]["enabled"] is False
        assert len(receiver.arrivals) == 1
        statuses = Counter(d["status"] for d in api.deliveries(endpoint_id))
        assert statuses == {"pending": 5, "dead": 1}

    def test_a_slow_receiver_times_out_and_is_retried(self, manual: Api, receiver: Receiver,
                                                      pump: Pump, endpoint: Endpoint) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        receiver.script.append(Reply(200, delay=TIMEOUT + 1.5))  # slower than the timeout
        receiver.start()
        record_rule(api)
        api.record("firms", firm(1))
        answer = violate(api, 1)
        pump.until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 2)

        first, second = api.deliveries(endpoint_id)
        slow, fast = first["history"]
        assert slow["status_code"] is None
        assert slow["error"].startswith("ReadTimeout")
        assert TIMEOUT * 1000 * 0.9 <= slow["latency_ms"] < (TIMEOUT + 1.5) * 1000
        assert (fast["status_code"], fast["error"]) == (200, None)
        assert fast["latency_ms"] < TIMEOUT * 1000
        # The receiver saw the first message twice (same id), then the second.
        position = answer["position"]
        assert receiver.ids() == [f"msg_{position}_1", f"msg_{position}_1",
                                  f"msg_{position}_2"]
        assert receiver.arrivals[0].body == receiver.arrivals[1].body
        assert second["history"][0]["status_code"] == 200
        assert all(a.verified_by for a in receiver.arrivals)

    @pytest.mark.parametrize("form", ["seconds", "http-date"])
    def test_retry_after_is_honoured(self, manual: Api, receiver: Receiver, pump: Pump,
                                     form: str, endpoint: Endpoint) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        # Two seconds, either as delta-seconds or as an HTTP date (whole seconds: between
        # two and three seconds away when it is answered).
        def in_three() -> str:
            return format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)

        receiver.script.append(Reply(429, retry_after="2" if form == "seconds" else in_three))
        receiver.start()
        record_rule(api)
        api.record("firms", firm(1))
        violate(api, 1)
        pump.until(lambda: len(receiver.arrivals) == 1)

        [throttled] = api.deliveries(endpoint_id, "failed")
        [attempt] = throttled["history"]
        assert (attempt["status_code"], throttled["last_status_code"]) == (429, 429)
        # The backoff (5 ms at this scale) gives way to the receiver's two seconds.
        wait = parse(throttled["next_attempt_at"]) - parse(attempt["at"])
        assert timedelta(seconds=1.95) <= wait <= timedelta(
            seconds=2.5 if form == "seconds" else 3.0)
        pump.until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 2, timeout=10)
        first, retried = receiver.arrivals[:2]
        assert retried.webhook_id == first.webhook_id
        assert retried.at - first.at >= 1.9

    def test_an_absurd_retry_after_is_recorded_not_fatal(
        self, manual: Api, receiver: Receiver, pump: Pump, endpoint: Endpoint
    ) -> None:
        """A receiver asks for a pause of 300,000 years: the attempt is recorded and the
        delivery waits (bounded), instead of the dispatcher failing to record it and sending
        it again every time its claim lapses."""
        api = manual
        endpoint_id = endpoint["id"]
        receiver.script.append(Reply(503, retry_after="9999999999999"))
        receiver.start()
        record_rule(api)
        api.record("firms", firm(1))
        violate(api, 1)
        pump.until(lambda: len(receiver.arrivals) == 1)
        [waiting] = api.deliveries(endpoint_id, "failed")
        assert [h["status_code"] for h in waiting["history"]] == [503]
        next_attempt = parse(waiting["next_attempt_at"])
        assert datetime.now(UTC) + timedelta(hours=1) < next_attempt
        assert next_attempt <= datetime.now(UTC) + timedelta(days=3)
        pump.for_a_while(0.2)
        assert len(receiver.arrivals) == 1


# 5. A dispatcher killed with a request in flight -------------------------------------------------


KILLED_DISPATCHER = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    import infra.webhooks as webhooks
    from infra.bootstrap import bootstrap
    from infra.settings import Settings

    container = bootstrap(Settings())
    # Its claims lapse soon after it dies.
    dispatcher = webhooks.Dispatcher(container, timeout=30.0, backoff_scale=0.001,
                                     claim_seconds=float(sys.argv[1]))
    Path(sys.argv[2]).write_text("running")
    dispatcher.run(threading.Event(), poll_interval=0.05)
""")


class TestKilledDispatcher:
    def test_messages_in_flight_are_delivered_after_a_restart(
        self, manual: Api, receiver: Receiver, hook_container: Container,
        database_url: str, tmp_path: Path, endpoint: Endpoint
    ) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        receiver.default = Reply(200, delay=30.0)  # hangs on to every request
        receiver.start()
        record_rule(api)
        for n in (1, 2):
            api.record("firms", firm(n))
            violate(api, n)
            cure(api, n)
        ProjectionRunner(hook_container).catch_up()

        # Step 1: another process dispatches; it is killed while a request is in flight.
        marker = tmp_path / "dispatcher-running"
        env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url,
               "CHIPLEDGER_LOG_LEVEL": "warning", "CHIPLEDGER_WEBHOOK_ALLOW_LOCAL": "1"}
        child = subprocess.Popen([sys.executable, "-c", KILLED_DISPATCHER, "2", str(marker)],
                                 env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
        kill_9_once(child, lambda: bool(receiver.arrivals), "the dispatcher never sent anything")
        [in_flight] = receiver.ids()
        deliveries = api.deliveries(endpoint_id)
        assert len(deliveries) == 8
        assert {d["status"] for d in deliveries} == {"pending"}  # nothing was recorded

        # Step 2: the receiver recovers; a new dispatcher takes over once the dead one's
        # claims lapse. Every message is delivered, none lost, the one in flight again.
        receiver.default = Reply(200)
        receiver.wake.set()
        restarted = Dispatcher(hook_container, timeout=TIMEOUT, backoff_scale=0.001)
        try:
            Pump(hook_container, restarted).until(
                lambda: len(api.deliveries(endpoint_id, "succeeded")) == 8, timeout=30)
        finally:
            restarted.close()
        ids = receiver.ids()
        assert set(ids) == {d["message_id"] for d in deliveries}
        assert receiver.acknowledged() == set(ids)
        assert ids.count(in_flight) == 2
        assert len(ids) == 9
        copies = [a for a in receiver.arrivals if a.webhook_id == in_flight]
        assert copies[0].body == copies[1].body
        assert all(a.verified_by for a in receiver.arrivals)
        assert_fifo_per_firm(receiver.arrivals, api.deliveries(endpoint_id))


# 6. Competing dispatchers (PostgreSQL) -----------------------------------------------------------


class TestCompetingDispatchers:
    def test_two_dispatchers_never_send_one_message_at_once(
        self, manual: Api, receiver: Receiver, hook_container: Container, database_url: str
    ) -> None:
        if not database_url.startswith("postgres"):
            pytest.skip("dispatchers share work through FOR UPDATE SKIP LOCKED on PostgreSQL")
        api = manual
        endpoint_id = subscribe(api, receiver, (POSTURE, "ledger.appended"))["id"]
        receiver.default = Reply(200, delay=0.02)
        receiver.start()
        record_rule(api)
        for n in range(1, 7):
            api.record("firms", firm(n))
        for n in range(1, 7):
            violate(api, n)
        for n in range(1, 7):
            cure(api, n)
        ProjectionRunner(hook_container).catch_up()

        stop = threading.Event()
        # Each delivers many at once to this one in-process receiver: on a loaded machine an
        # answer can take longer than the other tests' 1 s, and a timeout is a retry (a second
        # copy). Ten seconds keeps the premise below (no failures) true.
        dispatchers = [Dispatcher(hook_container, timeout=10.0, backoff_scale=0.001)
                       for _ in range(2)]
        threads = [threading.Thread(target=d.run, args=(stop, 0.01)) for d in dispatchers]
        for t in threads:
            t.start()
        try:
            # 6 firms x 4 posture messages, and one ledger.appended message per append.
            wait_until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 24 + 20,
                       timeout=30)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
        deliveries = api.deliveries(endpoint_id)
        assert len(deliveries) == 44
        assert receiver.overlaps == []
        ids = receiver.ids()
        assert sorted(ids, key=seq) == sorted((d["message_id"] for d in deliveries), key=seq)
        assert len(ids) == len(set(ids))  # no failures, so nothing was sent twice
        sent = Counter({d.name: d.sent.total() for d in dispatchers if d.sent.total()})
        assert sum(sent.values()) == 44
        assert len(sent) == 2
        # In order per firm, and the ledger's own messages in log order.
        assert_fifo_per_firm([a for a in receiver.arrivals
                              if a.payload["type"] == POSTURE],
                             [d for d in deliveries if d["ordering_key"] != "~ledger"])
        ledger = [seq(a.webhook_id) for a in receiver.arrivals
                  if a.payload["type"] == "ledger.appended"]
        assert ledger == sorted(ledger)
        assert len(ledger) == 20

    def test_a_slow_receiver_does_not_outlast_the_claims(
        self, manual: Api, receiver: Receiver, hook_container: Container, database_url: str,
        endpoint: Endpoint
    ) -> None:
        """A dispatcher claims up to ten deliveries and sends them one after the other. With
        a receiver that answers slowly (within the timeout), the batch takes longer than the
        claim lasts: production's 60 s claim, 15 s timeout and batch of ten, scaled down to a
        2 s claim, 1 s timeout and six firms answered in 0.6 s each."""
        if not database_url.startswith("postgres"):
            pytest.skip("dispatchers share work through FOR UPDATE SKIP LOCKED on PostgreSQL")
        api = manual
        endpoint_id = endpoint["id"]
        receiver.default = Reply(200, delay=0.6)
        receiver.start()
        record_rule(api)
        for n in range(1, 7):
            api.record("firms", firm(n))
            violate(api, n)
        ProjectionRunner(hook_container).catch_up()

        stop = threading.Event()
        dispatchers = [Dispatcher(hook_container, timeout=TIMEOUT, backoff_scale=0.001,
                                  claim_seconds=2) for _ in range(2)]
        threads = [threading.Thread(target=d.run, args=(stop, 0.01)) for d in dispatchers]
        for t in threads:
            t.start()
        try:
            wait_until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 12,
                       timeout=30)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=10)
        assert receiver.overlaps == []
        ids = receiver.ids()
        assert sorted(ids, key=seq) == sorted((d["message_id"] for d in
                                               api.deliveries(endpoint_id)), key=seq)
        assert_fifo_per_firm(receiver.arrivals, api.deliveries(endpoint_id))


# 7. Restatements -------------------------------------------------------------------------------


class TestRestatements:
    def test_a_correction_of_last_may_is_announced_as_a_restatement(
        self, manual: Api, receiver: Receiver, pump: Pump, endpoint: Endpoint
    ) -> None:
        api = manual
        endpoint_id = endpoint["id"]
        receiver.start()
        api.record("chip-models", H20)
        api.record("firms", ALIBABA)
        api.record("regulations", H20_RULE)
        today = date.today()
        may = date(today.year if today.month > 5 else today.year - 1, 5, 1)

        # Step 1: a shipment of last May is recorded today: a violation from May on.
        shipped = api.record("shipments", shipment("ship-h20-may", "alibaba", may.isoformat()))
        recorded_on = shipped["recorded_at"][:10]
        assert recorded_on > may.isoformat()
        pump.until(lambda: len(receiver.arrivals) == 2)

        def posture(position: int, as_of: str, until: str | None, before: str, after: str,
                    restatement: bool, known_at: str) -> dict[str, Any]:
            return {"firm_id": "alibaba", "as_of": as_of, "as_of_until": until,
                    "previous_status": before, "status": after, "restatement": restatement,
                    "known_at": known_at, "position": position}

        p, known = shipped["position"], shipped["recorded_at"]
        assert receiver.ids() == [f"msg_{p}_1", f"msg_{p}_2"]
        assert [a.payload for a in receiver.arrivals] == [
            {"type": POSTURE, "timestamp": known, "data": posture(
                p, may.isoformat(), recorded_on, "compliant", "violation", True, known)},
            {"type": POSTURE, "timestamp": known, "data": posture(
                p, recorded_on, None, "compliant", "violation", False, known)},
        ]

        # Step 2: a correction today moves the ship date to May 21: only the past changes
        # (compliant from May 1 to May 21), so there is one message, a restatement.
        moved = (may + timedelta(days=20)).isoformat()
        corrected = api.record("shipments/ship-h20-may/corrections",
                               {"shipped_on": moved, "reason": "bill of lading date"})
        pump.until(lambda: len(receiver.arrivals) == 3)
        p, known = corrected["position"], corrected["recorded_at"]
        assert receiver.arrivals[2].webhook_id == f"msg_{p}_1"
        assert receiver.arrivals[2].payload["data"] == posture(
            p, may.isoformat(), moved, "violation", "compliant", True, known)

        # Step 3: a second correction (the chips never left for China) changes the past and
        # the future: a restatement for May 21 to today, and a new change from today on.
        rerouted = api.record("shipments/ship-h20-may/corrections",
                              {"to_country": "SG", "reason": "consignee's warehouse"})
        pump.until(lambda: len(receiver.arrivals) == 5)
        p, known = rerouted["position"], rerouted["recorded_at"]
        assert [a.webhook_id for a in receiver.arrivals[3:]] == [f"msg_{p}_1", f"msg_{p}_2"]
        assert [a.payload["data"] for a in receiver.arrivals[3:]] == [
            posture(p, moved, recorded_on, "violation", "compliant", True, known),
            posture(p, recorded_on, None, "violation", "compliant", False, known)]
        assert all(a.verified_by for a in receiver.arrivals)
        assert [d["status"] for d in api.deliveries(endpoint_id)] == ["succeeded"] * 5
