"""python -m bench webhooks: the dispatcher against a fast local receiver (issue 18, item 6).

Messages are written straight into the outbox, as the findings projection writes them (one
posture.changed message a position, spread over many firms), so the figures are the
dispatcher's own: fan-out, claims, signing, the HTTP posts, the outcomes recorded.

1. throughput: `--events` messages queued, then one dispatcher delivers them all (goal
   2,000 messages/s);
2. lag: messages committed at `--rate` a second for `--seconds`; each one's lag from its
   commit to its arrival (goal p99 under 1 s at 500 a second);
3. the same with a tarpit endpoint registered beside the healthy one (accepts connections,
   never answers): the healthy endpoint's lag.

Give an empty database (the default is a fresh SQLite file in a temporary directory).
"""

import json
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.webhook_receiver import FastReceiver
from infra.bootstrap import Container, bootstrap
from infra.keys import command_line_user
from infra.logging import configure_logging
from infra.settings import Settings
from infra.store import Dialect
from infra.webhooks import Dispatcher, Webhooks
from projections.outbox import SEQ_PER_POSITION

FIRMS = 1000
THROUGHPUT_GOAL, LAG_GOAL = 2000, 1.0
_PAYLOAD = json.dumps({"firm_id": "firm-0", "as_of": "2025-06-01", "as_of_until": None,
                       "previous_status": "compliant", "status": "violation",
                       "restatement": False, "known_at": "2025-06-01T12:00:00.000000Z",
                       "position": 1})


class Outbox:
    """Writes messages as the projection does, each position once."""

    def __init__(self, dialect: Dialect) -> None:
        self.d, self.next_position = dialect, 1_000_000

    def write(self, count: int) -> tuple[list[str], float]:
        d, now = self.d, datetime.now(UTC)
        rows, ids = [], []
        for _ in range(count):
            p = self.next_position
            self.next_position += 1
            ids.append(f"msg_{p}_1")
            rows.append((ids[-1], p, p * SEQ_PER_POSITION + 1, "posture.changed",
                         f"firm-{p % FIRMS}", _PAYLOAD, d.to_db_time(now)))
        with d.transaction(commit=True) as cursor:
            cursor.executemany(d.sql(
                f"INSERT INTO {d.outbox_table} (message_id, position, seq, event_type, "
                "ordering_key, payload, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"), rows)
        return ids, time.time()


class Tarpit:
    """Accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._hold, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/hooks"

    def _hold(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return


class Run:
    """One dispatcher delivering while the caller writes messages."""

    def __init__(self, container: Container) -> None:
        self.stop = threading.Event()
        self.dispatcher = Dispatcher(container, timeout=container.settings.webhook_timeout)
        self.thread = threading.Thread(target=self.dispatcher.run, args=(self.stop, 0.5))

    def __enter__(self) -> "Run":
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def wait_for(receiver: FastReceiver, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while receiver.count.value < count and time.monotonic() < deadline:
        time.sleep(0.01)


def throughput(container: Container, hooks: Webhooks, outbox: Outbox, events: int,
               directory: Path) -> float:
    receiver = FastReceiver(directory / "throughput.json")
    endpoint, _ = hooks.create(receiver.url, ["posture.changed"], "bench",
                               recorded_by=command_line_user())
    outbox.write(events)
    started = time.perf_counter()
    with Run(container):
        wait_for(receiver, events, timeout=600)
        elapsed = time.perf_counter() - started
    delivered = len(receiver.arrivals())
    hooks.disable(endpoint.endpoint_id, "bench done", recorded_by=command_line_user())
    rate = delivered / elapsed
    print(f"throughput: {delivered:,} of {events:,} messages in {elapsed:.2f} s: "
          f"{rate:,.0f} messages/s (goal {THROUGHPUT_GOAL:,}: "
          f"{'met' if rate >= THROUGHPUT_GOAL else 'NOT met'})")
    return rate


def lag(container: Container, hooks: Webhooks, outbox: Outbox, rate: int, seconds: float,
        directory: Path, tarpit: bool) -> list[float]:
    receiver = FastReceiver(directory / f"lag-{tarpit}.json")
    made = [hooks.create(url, ["posture.changed"], "bench", recorded_by=command_line_user())[0]
            for url in ([Tarpit().url] if tarpit else []) + [receiver.url]]
    committed: dict[str, float] = {}
    with Run(container):
        started, sent = time.monotonic(), 0
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * rate) - sent
            if due > 0:
                ids, at = outbox.write(due)
                committed.update(dict.fromkeys(ids, at))
                sent += due
            time.sleep(0.005)
        wait_for(receiver, sent, timeout=60)
    arrivals = receiver.arrivals()
    for endpoint in made:
        hooks.disable(endpoint.endpoint_id, "bench done", recorded_by=command_line_user())
    lags = sorted(arrivals[m] - at for m, at in committed.items() if m in arrivals)
    p50, p99 = statistics.median(lags), lags[int(len(lags) * 0.99) - 1]
    label = "healthy endpoint beside a tarpit" if tarpit else "one endpoint"
    print(f"lag at {rate}/s for {seconds:.0f} s, {label}: {len(lags):,} of {sent:,} arrived; "
          f"p50 {p50 * 1000:,.0f} ms, p99 {p99 * 1000:,.0f} ms, max {lags[-1] * 1000:,.0f} ms "
          f"(goal p99 < {LAG_GOAL:.0f} s: {'met' if p99 < LAG_GOAL else 'NOT met'})")
    return lags


def main(url: str | None, events: int, rate: int, seconds: float) -> None:
    configure_logging("json", "warning")  # an info line per attempt would be the bench
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        settings = Settings(database_url=url or f"sqlite:///{directory / 'webhooks.db'}",
                            webhook_allow_local=True)
        container = bootstrap(settings)
        try:
            hooks, outbox = Webhooks(container), Outbox(container.store.dialect)
            print(f"backend {settings.backend}; in flight at most "
                  f"{settings.webhook_max_in_flight} ({settings.webhook_max_in_flight_per_endpoint}"
                  f" an endpoint); {FIRMS:,} firms")
            throughput(container, hooks, outbox, events, directory)
            lag(container, hooks, outbox, rate, seconds, directory, tarpit=False)
            lag(container, hooks, outbox, rate, seconds, directory, tarpit=True)
        finally:
            container.close()
