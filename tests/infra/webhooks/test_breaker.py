"""The circuit breaker per endpoint (issue 18, item 2): a run of failures opens it for a
cool-down with jitter, its deliveries wait instead of spending attempts, one probe closes
it; the state and counts are in GET /v1/webhooks/endpoints/{id} and /metrics; the other
endpoints subscribed hear `endpoint.circuit_opened` and `endpoint.disabled`. On SQLite and
PostgreSQL, with real receivers."""

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support.webhooks import (
    POSTURE,
    Api,
    Pump,
    Receiver,
    Reply,
    firm,
    parse,
    record_rule,
    violate,
)

COOLDOWN = 1.5
FAILURES = 3
OPENED, DISABLED = "endpoint.circuit_opened", "endpoint.disabled"


@pytest.fixture
def hook_update() -> dict[str, Any]:
    return {"webhook_breaker_failures": FAILURES, "webhook_breaker_cooldown": COOLDOWN}


def endpoint(api: Api, endpoint_id: str) -> dict[str, Any]:
    answer = api.client.get(f"/v1/webhooks/endpoints/{endpoint_id}", headers=api.admin)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def attempts(api: Api, endpoint_id: str) -> int:
    return sum(d["attempts"] for d in api.deliveries(endpoint_id))


def test_a_run_of_failures_opens_the_circuit_and_one_probe_closes_it(
    api: Api, pump: Pump, receivers: Callable[[], Receiver]
) -> None:
    failing, watcher = receivers(), receivers()
    failing.default = Reply(503)
    broken = api.endpoint(failing.url)["id"]
    watching = api.endpoint(watcher.url, (OPENED, DISABLED))
    watcher.secrets = [watching["secret"]]
    assert endpoint(api, broken)["circuit"] == {
        "state": "closed", "consecutive_failures": 0, "open_until": None, "openings": 0}
    record_rule(api)
    api.record("firms", firm(1))
    violate(api, 1)

    # Step 1: three failures in a row (503, retried after a few ms) open the circuit.
    pump.until(lambda: endpoint(api, broken)["circuit"]["state"] == "open")
    opened_at = datetime.now(UTC)
    circuit = endpoint(api, broken)["circuit"]
    assert (circuit["consecutive_failures"], circuit["openings"]) == (FAILURES, 1)
    until = parse(circuit["open_until"])
    assert opened_at + timedelta(seconds=COOLDOWN * 0.8 - 1) < until
    assert until <= opened_at + timedelta(seconds=COOLDOWN * 1.2)
    assert len(failing.arrivals) == FAILURES

    # Step 2: while it is open, nothing is sent and no attempt is spent.
    pump.for_a_while(0.5)
    if datetime.now(UTC) < until:
        assert len(failing.arrivals) == FAILURES
        assert attempts(api, broken) == FAILURES

    # The watcher heard of it, signed, with the endpoint and the run of failures.
    pump.until(lambda: len(watcher.arrivals) == 1)
    [heard] = watcher.arrivals
    assert heard.verified_by
    assert heard.payload["type"] == OPENED
    assert heard.payload["data"] == {"endpoint_id": broken, "url": failing.url,
                                     "description": None, "consecutive_failures": FAILURES,
                                     "open_until": circuit["open_until"]}

    # Step 3: the receiver is healthy again; after the cool-down one probe goes first, then
    # the circuit is closed and the rest flows.
    failing.default = Reply(200)
    pump.until(lambda: len(api.deliveries(broken, "succeeded")) == 2, timeout=COOLDOWN * 4)
    head, second = (d["message_id"] for d in api.deliveries(broken))
    # The probe is the head that failed, sent once the cool-down was over; the second
    # message only after it.
    assert [a.webhook_id for a in failing.arrivals] == [head] * (FAILURES + 1) + [second]
    probe = failing.arrivals[FAILURES]
    assert probe.at - failing.arrivals[FAILURES - 1].at >= COOLDOWN * 0.8 - 0.1
    assert endpoint(api, broken)["circuit"] == {
        "state": "closed", "consecutive_failures": 0, "open_until": None, "openings": 1}

    # /metrics shows circuits by state and each endpoint's openings.
    metrics = api.client.get("/metrics", headers=api.admin).text
    assert 'chipledger_webhook_circuits{state="open"} 0.0' in metrics
    assert 'chipledger_webhook_circuits{state="closed"} 2.0' in metrics
    assert f'chipledger_webhook_circuit_openings{{endpoint_id="{broken}"}} 1.0' in metrics

    # Step 4: disabling the endpoint is announced too.
    assert api.client.delete(f"/v1/webhooks/endpoints/{broken}",
                             headers=api.admin).status_code == 200
    pump.until(lambda: len(watcher.arrivals) == 2)
    gone = watcher.arrivals[1].payload
    assert gone["type"] == DISABLED
    assert gone["data"]["endpoint_id"] == broken
    assert gone["data"]["reason"] == "disabled through the API"


def test_a_failed_probe_opens_the_circuit_again_without_announcing_it_again(
    api: Api, pump: Pump, receivers: Callable[[], Receiver]
) -> None:
    failing, watcher = receivers(), receivers()
    failing.default = Reply(503)
    broken = api.endpoint(failing.url)["id"]
    watcher.secrets = [api.endpoint(watcher.url, (OPENED,))["secret"]]
    record_rule(api)
    api.record("firms", firm(1))
    violate(api, 1)
    pump.until(lambda: endpoint(api, broken)["circuit"]["state"] == "open")
    first = parse(endpoint(api, broken)["circuit"]["open_until"])

    # The probe after the cool-down fails: open again, a later open_until, one opening.
    pump.until(lambda: len(failing.arrivals) == FAILURES + 1, timeout=COOLDOWN * 4)
    pump.until(lambda: endpoint(api, broken)["circuit"]["state"] == "open")
    circuit = endpoint(api, broken)["circuit"]
    assert parse(circuit["open_until"]) > first
    assert (circuit["openings"], circuit["consecutive_failures"]) == (1, FAILURES + 1)
    pump.for_a_while(0.3)
    assert [a.payload["type"] for a in watcher.arrivals] == [OPENED]
    assert POSTURE not in {a.payload["type"] for a in watcher.arrivals}


def test_several_dispatchers_send_a_single_probe(
    api: Api, hooked: Any, dispatchers: Any, receivers: Callable[[], Receiver]
) -> None:
    failing = receivers()
    failing.default = Reply(503)
    broken = api.endpoint(failing.url)["id"]
    record_rule(api)
    for n in (1, 2, 3):
        api.record("firms", firm(n))
        violate(api, n)
    first = Pump(hooked, dispatchers())
    first.until(lambda: endpoint(api, broken)["circuit"]["state"] == "open")
    opened = len(failing.arrivals)

    # Three dispatchers step at once after the cool-down. The probe is not answered within
    # the timeout: a failure, which opens the circuit again; until then, and for a cool-down
    # after, nothing else may be sent.
    failing.default = Reply(200, delay=5.0)
    others = [dispatchers() for _ in range(3)]
    stop = threading.Event()

    def step(d: Any) -> None:
        while not stop.is_set():
            d.step()
            time.sleep(0.01)
    threads = [threading.Thread(target=step, args=(d,)) for d in others]
    for t in threads:
        t.start()
    try:
        first.runner.catch_up()
        deadline = time.monotonic() + COOLDOWN * 4
        while len(failing.arrivals) == opened:
            assert time.monotonic() < deadline, "no probe"
            time.sleep(0.01)
        time.sleep(0.5)  # the probe is out
        assert len(failing.arrivals) == opened + 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
