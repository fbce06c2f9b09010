"""Durable single-event appends: chipledger over HTTP with 64 clients (group commit) against
the plain eventsourcing library saving one event per call from 64 threads, same database."""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from bench.serving import free_port, wait_ready


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


def chipledger_rate(url: str, clients: int, seconds: float,
                    processes: int = 1) -> tuple[float, float]:
    """Appends per second over HTTP, and the p99 latency in ms, against a real server.

    Auth is on, as users run it: every request carries a writer's API key.
    The clients are bench.loadgen in a process of its own: raw keep-alive HTTP/1.1 on one
    asyncio loop, so the load generator takes little of the CPU the server and PostgreSQL
    share (httpx took about a millisecond a request). Every answer must be a 201."""
    port = free_port()
    key = _writer_key(url)
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": url, "CHIPLEDGER_AUTH": "enabled",
           "CHIPLEDGER_LOG_LEVEL": "warning", "CHIPLEDGER_POSTGRES_POOL_SIZE": "10"}
    chipledger = str(Path(sys.executable).parent / "chipledger")
    server = subprocess.Popen([chipledger, "serve", "--port", str(port), "--no-workers",
                               "--processes", str(processes)],
                              env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, path="/healthz", within=30)
        done = subprocess.run(
            [sys.executable, "-m", "bench.loadgen", "--port", str(port), "--clients",
             str(clients), "--seconds", str(seconds), "--api-key", key],
            capture_output=True, text=True, check=False, cwd=Path(__file__).parent.parent)
        if done.returncode != 0 or not done.stdout.strip():
            raise RuntimeError(f"the load generator failed ({done.returncode}): "
                               f"{done.stdout.strip()} {done.stderr.strip()[-2000:]}")
        result = json.loads(done.stdout.splitlines()[-1])
        return result["requests"] / result["seconds"], result["p99_ms"]
    finally:
        server.terminate()
        server.wait(timeout=10)


def _writer_key(url: str) -> str:
    from infra.bootstrap import bootstrap
    from infra.keys import KeyRing, Role
    from infra.settings import Settings

    container = bootstrap(Settings(database_url=url))
    try:
        return KeyRing(container.store).create(Role.WRITER, "bench-appends")[1]
    finally:
        container.close()


def main(url: str, clients: int, seconds: float, processes: int = 1) -> dict[str, Any]:
    from infra.bootstrap import library_env
    from infra.settings import Settings

    env = library_env(Settings(database_url=url))
    env.pop("APPLICATION_RECORDER_TOPIC")
    baseline = library_rate(env, clients, seconds)
    ours, p99 = chipledger_rate(url, clients, seconds, processes)
    print(f"baseline, library single-event saves, {clients} threads: {baseline:>10,.0f}/s")
    served = f", {processes} API processes" if processes > 1 else ""
    print(f"chipledger HTTP appends, {clients} clients (group commit{served}): {ours:>10,.0f}/s  "
          f"ratio {ours / baseline:.2f}  (p99 {p99:.0f} ms)")
    return {"baseline": baseline, "ours": ours, "p99_ms": p99, "processes": processes}
