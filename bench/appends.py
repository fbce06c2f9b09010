"""Durable single-event appends: chipledger over HTTP with 64 clients (group commit) against
the plain eventsourcing library saving one event per call from 64 threads, same database."""

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Counter(Aggregate):
    @event("Started")
    def __init__(self, name: str) -> None:
        self.name = name


def library_rate(env: dict[str, str], clients: int, seconds: float) -> float:
    """Single-event saves per second from `clients` threads, plain library."""
    app = Application(env={**env, "POSTGRES_POOL_SIZE": str(clients),
                           "POSTGRES_MAX_OVERFLOW": "0"})
    stop = time.monotonic() + seconds
    counts = [0] * clients

    def work(i: int) -> None:
        while time.monotonic() < stop:
            app.save(Counter(f"c-{i}-{counts[i]}"))
            counts[i] += 1

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(work, range(clients)))
    app.close()
    return sum(counts) / seconds


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chipledger_rate(url: str, clients: int, seconds: float) -> tuple[float, float]:
    """Appends per second over HTTP, and the p99 latency in ms, against a real server."""
    port = _free_port()
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": url, "CHIPLEDGER_AUTH": "disabled",
           "CHIPLEDGER_LOG_LEVEL": "warning", "CHIPLEDGER_POSTGRES_POOL_SIZE": "10"}
    chipledger = str(Path(sys.executable).parent / "chipledger")
    server = subprocess.Popen([chipledger, "serve", "--port", str(port), "--no-workers"],
                              env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base)
        run = uuid.uuid4().hex[:6]
        latencies: list[float] = []
        lock = threading.Lock()
        stop = time.monotonic() + seconds

        def work(i: int) -> int:
            done = 0
            with httpx.Client(base_url=base, timeout=30) as client:
                while time.monotonic() < stop:
                    started = time.perf_counter()
                    response = client.post("/v1/firms", json={
                        "id": f"b{run}-{i}-{done}", "name": "Bench", "hq_country": "SG"})
                    response.raise_for_status()
                    with lock:
                        latencies.append(time.perf_counter() - started)
                    done += 1
            return done

        with ThreadPoolExecutor(clients) as pool:
            total = sum(pool.map(work, range(clients)))
        latencies.sort()
        return total / seconds, latencies[int(len(latencies) * 0.99)] * 1000
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


def main(url: str, clients: int, seconds: float) -> dict[str, Any]:
    from infra.bootstrap import library_env
    from infra.settings import Settings

    env = library_env(Settings(database_url=url))
    env.pop("APPLICATION_RECORDER_TOPIC")
    baseline = library_rate(env, clients, seconds)
    ours, p99 = chipledger_rate(url, clients, seconds)
    print(f"baseline, library single-event saves, {clients} threads: {baseline:>10,.0f}/s")
    print(f"chipledger HTTP appends, {clients} clients (group commit): {ours:>10,.0f}/s  "
          f"ratio {ours / baseline:.2f}  (p99 {p99:.0f} ms)")
    return {"baseline": baseline, "ours": ours, "p99_ms": p99}
