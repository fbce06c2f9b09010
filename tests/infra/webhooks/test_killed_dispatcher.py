"""A dispatcher killed with `kill -9` while it delivers concurrently to a healthy receiver and
holds a tarpit's connection open (issue 18): once its claims lapse another dispatcher takes
over, and the healthy receiver has every message, each firm's in order, none lost. On SQLite
and PostgreSQL, the dispatcher a process of its own."""

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from infra.bootstrap import Container
from infra.runner import ProjectionRunner
from tests.api.test_webhooks import KILLED_DISPATCHER, ROOT
from tests.infra.webhooks.conftest import Build
from tests.infra.webhooks.receivers import SocketReceiver, socket_receiver
from tests.support.webhooks import (
    POSTURE,
    Api,
    Pump,
    Receiver,
    Reply,
    assert_fifo_per_firm,
    cure,
    firm,
    kill_9_once,
    record_rule,
    violate,
)

FIRMS = 6


@pytest.fixture
def tarpit() -> Iterator[SocketReceiver]:
    with socket_receiver(hold=True) as built:
        yield built


def dispatch_elsewhere(database_url: str, marker: Any) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url,
           "CHIPLEDGER_LOG_LEVEL": "warning", "CHIPLEDGER_WEBHOOK_ALLOW_LOCAL": "1"}
    return subprocess.Popen([sys.executable, "-c", KILLED_DISPATCHER, "2", str(marker)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)


def test_nothing_is_lost_or_out_of_order_across_a_kill_9(
    api: Api, hooked: Container, dispatchers: Build, receivers: Callable[[], Receiver],
    tarpit: SocketReceiver, database_url: str, tmp_path: Any
) -> None:
    healthy = receivers()
    healthy.default = Reply(200, delay=0.05)  # slow enough to be caught in flight
    api.endpoint(tarpit.url)
    created = api.endpoint(healthy.url)
    healthy.secrets = [created["secret"]]
    record_rule(api)
    for n in range(1, FIRMS + 1):
        api.record("firms", firm(n))
    for n in range(1, FIRMS + 1):
        violate(api, n)
    for n in range(1, FIRMS + 1):
        cure(api, n)
    ProjectionRunner(hooked).catch_up()
    expected = 4 * FIRMS

    # Step 1: another process dispatches, concurrently; it is killed mid-way, with the
    # tarpit's connection open and some of the healthy receiver's deliveries in flight.
    child = dispatch_elsewhere(database_url, tmp_path / "running")
    kill_9_once(child, lambda: len(healthy.arrivals) >= expected // 3,
                "the dispatcher never got going")
    assert tarpit.accepted >= 1
    before = len(api.deliveries(created["id"], "succeeded"))
    assert before < expected

    # Step 2: a dispatcher here takes over once the dead one's claims lapse.
    Pump(hooked, dispatchers()).until(
        lambda: len(api.deliveries(created["id"], "succeeded")) == expected, timeout=60)
    deliveries = api.deliveries(created["id"])
    ids = {a.webhook_id for a in healthy.arrivals}
    assert ids == {d["message_id"] for d in deliveries}
    assert len(ids) == expected
    assert all(a.verified_by for a in healthy.arrivals)
    assert healthy.overlaps == []
    assert_fifo_per_firm([a for a in healthy.arrivals if a.payload["type"] == POSTURE],
                         deliveries)
