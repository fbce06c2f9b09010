"""Faults fail fast: a database that is unreachable, silent or locked answers 503 with
Retry-After within the deadline (CHIPLEDGER_DATABASE_TIMEOUT), never a hang or a bare 500, and
the server recovers by itself when the database comes back, with nothing half-written.

The outages go through a real TCP proxy between the server (a real `chipledger serve`) and
PostgreSQL, paused (connections and bytes held, nothing forwarded) or killed (every connection
cut, nothing listening) for several seconds."""

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from bench.serving import free_port, wait_ready
from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from tests.support.logs import _pg, _sqlite_path
from tests.support.tcp_proxy import TcpProxy

CHIPLEDGER = Path(sys.executable).parent / "chipledger"
TIMEOUT = 2.0  # the served process's CHIPLEDGER_DATABASE_TIMEOUT
ANSWERED_WITHIN = TIMEOUT + 3.0  # the deadline, and room for a noisy shared machine
READY_WITHIN = 2.0  # what the issue asks of /readyz, either way
OUTAGE_SECONDS = 6.0


def firm(record_id: str) -> dict[str, str]:
    return {"id": record_id, "name": f"Firm {record_id}", "hq_country": "SG"}


def assert_unavailable(response: httpx.Response, what: str) -> None:
    assert response.status_code == 503, f"{what}: {response.status_code} {response.text}"
    assert response.headers["retry-after"].isdigit(), what
    assert response.headers["content-type"].startswith("application/problem+json"), what
    assert response.json()["type"].endswith("/database-unavailable"), what


# A server whose database goes away -------------------------------------------------------------


@dataclass
class Served:
    base: str
    proxy: TcpProxy
    headers: dict[str, str]
    log: Path

    def request(self, method: str, path: str, **kwargs: Any) -> tuple[httpx.Response, float]:
        """The answer and how long it took; the client waits far longer than any deadline."""
        kwargs.setdefault("headers", self.headers)
        started = time.monotonic()
        response = httpx.request(method, self.base + path, timeout=30, **kwargs)
        return response, time.monotonic() - started

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
        return lines


def _through(proxy_port: int, database_url: str) -> str:
    parts = urlsplit(database_url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{proxy_port}"))


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    if database_url.startswith("sqlite"):
        pytest.skip("an outage of a database server is PostgreSQL's: SQLite is a file inside "
                    "the server's process (see the locked-database test)")
    container = bootstrap(Settings(database_url=database_url))  # the tables, and a key
    try:
        key = KeyRing(container.store).create(Role.ADMIN)[1]
    finally:
        container.close()
    target = urlsplit(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxy_port = proxy.start()
    port = free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": _through(proxy_port, database_url),
           "CHIPLEDGER_DATABASE_TIMEOUT": str(TIMEOUT), "CHIPLEDGER_LOG_FORMAT": "json",
           "CHIPLEDGER_LOG_LEVEL": "info", "CHIPLEDGER_POLL_INTERVAL": "0.1",
           "CHIPLEDGER_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem")}
    with log.open("wb") as sink:
        server = subprocess.Popen([str(CHIPLEDGER), "serve", "--port", str(port)], env=env,
                                  stdout=sink, stderr=sink)
    result = Served(f"http://127.0.0.1:{port}", proxy, {"Authorization": f"Bearer {key}"}, log)
    try:
        wait_ready(result.base, server, within=60, timeout=5,
                   why_exited=lambda: result.log.read_text()[-3000:])
        yield result
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # hung on its database: no graceful stop to wait for
            server.kill()
            server.wait()
        proxy.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("outage", ["paused", "killed"])
def test_requests_fail_fast_while_the_database_is_away_and_succeed_once_it_is_back(
    served: Served, outage: str
) -> None:
    # Step 1: before the outage, the server appends and reads.
    assert served.request("POST", "/v1/firms", json=firm("before"))[0].status_code == 201

    # Step 2: the database goes silent (or away).
    served.proxy.pause() if outage == "paused" else served.proxy.kill()
    began = time.monotonic()

    # Step 3: a verification, a replay, then concurrent appends (single and batch) and reads
    # all answer 503 in time.
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/firms", {"json": firm(f"during-{n}"),
                               "headers": {**served.headers, "Idempotency-Key": f"k-{n}"}})
        for n in range(6)
    ] + [
        ("POST", "/v1/events:batch", {
            "content": json.dumps({"type": "firms", "body": firm("batched")}) + "\n",
            "headers": {**served.headers, "Content-Type": "application/x-ndjson",
                        "Idempotency-Key": "k-batch"}}),
        ("GET", "/v1/firms/before", {}),
        ("GET", "/v1/events?after=0", {}),
        ("GET", "/v1/firms/before/posture", {}),
        ("GET", "/v1/integrity", {}),
    ]
    # These read the log a page ahead, in a thread of their own: first, while the pool
    # still holds connections that went silent.
    for path, body in [("/v1/integrity/verification", None), ("/v1/replays", {})]:
        response, took = served.request("POST", path, json=body)
        assert_unavailable(response, path)
        assert took < ANSWERED_WITHIN, f"POST {path} took {took:.1f} s"
    with ThreadPoolExecutor(len(calls)) as pool:
        answers = list(pool.map(lambda c: served.request(c[0], c[1], **c[2]), calls))
    for (method, path, _), (response, took) in zip(calls, answers, strict=True):
        assert_unavailable(response, f"{method} {path}")
        assert took < ANSWERED_WITHIN, f"{method} {path} took {took:.1f} s"
    assert "Idempotency-Key" in answers[0][0].json()["detail"]  # an append may be in doubt

    # Step 4: /readyz says unavailable within 2 s, again and again.
    for _ in range(3):
        response, took = served.request("GET", "/readyz")
        assert (response.status_code, response.json()["status"]) == (503, "unavailable")
        assert "retry-after" in response.headers
        assert took < READY_WITHIN, f"/readyz took {took:.2f} s"
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - began)))

    # Step 5: the database comes back; the server recovers by itself.
    served.proxy.resume() if outage == "paused" else served.proxy.start()
    deadline = time.monotonic() + 60
    while served.request("GET", "/readyz")[0].status_code != 200:
        assert time.monotonic() < deadline, "the server did not recover"
        time.sleep(0.2)

    # Step 6: each append answered 503 is retried with its key and is recorded once.
    for method, path, kwargs in calls[:7]:
        response, _ = served.request(method, path, **kwargs)
        assert response.status_code in (200, 201), response.text
    events = served.request("GET", "/v1/events?after=0&limit=100")[0].json()["events"]
    recorded = sorted(e["record_id"] for e in events)
    assert recorded == sorted(["before", "batched", *(f"during-{n}" for n in range(6))])

    # Step 7: nothing was half-written: the chain verifies through the head, the read models
    # catch up, and no request was ever answered with another 5xx.
    check = served.request("POST", "/v1/integrity/verification")[0].json()
    assert (check["ok"], check["verified_through"]) == (True, len(events))
    deadline = time.monotonic() + 60
    while served.request("GET", "/readyz")[0].json()["projections"]["findings"]["lag"]:
        assert time.monotonic() < deadline, "the projection did not resume"
        time.sleep(0.2)
    statuses = {line["status"] for line in served.log_lines() if line.get("event") == "request"}
    assert statuses <= {200, 201, 503}, statuses


# A database another writer keeps locked --------------------------------------------------------


@contextmanager
def write_lock(database_url: str) -> Iterator[None]:
    """Another connection takes the writers' lock and keeps it: SQLite's write lock, or the
    lock PostgreSQL's writers take on the events table."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_path(database_url), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
            conn.close()
        return
    base, schema = _pg(database_url)
    with psycopg.connect(base) as pg:
        pg.execute(f'LOCK TABLE "{schema}".ledger_events IN EXCLUSIVE MODE')
        try:
            yield
        finally:
            pg.rollback()


def test_an_append_while_another_writer_holds_the_lock_answers_503_in_time_and_writes_nothing(
    settings: Settings, database_url: str
) -> None:
    timeout = 1.0
    container = bootstrap(settings.model_copy(update={"database_timeout": timeout}))
    try:
        with TestClient(create_app(container=container)) as client:
            admin = {"Authorization": f"Bearer {KeyRing(container.store).create(Role.ADMIN)[1]}"}
            # Step 1: a record, then another writer takes the lock and keeps it.
            assert client.post("/v1/firms", json=firm("a"), headers=admin).status_code == 201
            retry = {**admin, "Idempotency-Key": "while-locked"}
            with write_lock(database_url):
                # Step 2: an append gives up after the deadline, not after the library's
                # retries of the busy or lock timeout, and says so as a 503.
                started = time.monotonic()
                response = client.post("/v1/firms", json=firm("b"), headers=retry)
                took = time.monotonic() - started
                assert_unavailable(response, "an append under the lock")
                assert took < timeout + 3.0, f"took {took:.1f} s"
                # Reads do not wait for writers.
                assert client.get("/v1/firms/a", headers=admin).status_code == 200
            # Step 3: nothing was written; once the lock is gone the retry appends once.
            assert client.get("/v1/firms/b", headers=admin).status_code == 404
            again = client.post("/v1/firms", json=firm("b"), headers=retry)
            assert again.status_code == 201, again.text
            assert len(client.get("/v1/firms/b/history", headers=admin).json()["events"]) == 1
    finally:
        container.close()
