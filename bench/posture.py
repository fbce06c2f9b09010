"""Posture queries against a replay of the same firm (issue #6: p99 under 20 ms in the server,
and at least 100x faster than replaying the firm).

On an existing ledger (built by `python -m bench build`), the projection is caught up first,
then random firms are asked for at random moments: `as_of` between 2022-01-01 and 2026-06-30,
`known_at` between the first and the last recorded_at of the log. Each query does what the
GET /v1/firms/{id}/posture handler does, without HTTP; a few hundred go through the real app
in-process; a few of the same questions are answered by a replay from the raw log, as
POST /v1/replays does.
"""

import logging
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from api.deps import moment_of, resolve_times
from api.schemas import finding_json, posture_json, processing_json
from bench.explain import refresh_statistics
from bench.serving import signing_key_file
from domain.errors import RecordNotFoundError
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.logging import configure_logging
from infra.posture import PostureService, posture_service
from infra.replay import ReplayService
from infra.runner import ProjectionRunner
from infra.seal import format_time
from infra.settings import Settings
from projections.findings import PROJECTION_NAME

AS_OF_FROM, AS_OF_TO = date(2022, 1, 1), date(2026, 6, 30)
HTTP_QUERIES = 300
REPLAYS = 5
WARM_UP = 20
P99_TARGET_MS = 20.0
TIMES_FASTER = 100


@dataclass(frozen=True)
class Ask:
    firm_id: str
    as_of: date
    known_at: datetime


@dataclass(frozen=True)
class Timings:
    seconds: list[float]
    not_found: int

    @property
    def p50(self) -> float:
        return 1000 * statistics.median(self.seconds)

    @property
    def p99(self) -> float:
        return 1000 * statistics.quantiles(self.seconds, n=100)[98]

    @property
    def max(self) -> float:
        return 1000 * max(self.seconds)


def main(url: str, queries: int = 2000, seed: int = 7) -> None:
    # The app signs with the database's one key: the same file on every run of the bench.
    container = bootstrap(Settings(database_url=url, signing_key_file=signing_key_file(url)))
    try:
        with _quiet_logs():
            _measure(container, queries, seed)
    finally:
        container.close()


def _measure(container: Container, queries: int, seed: int) -> None:
    _catch_up(container)
    for table in refresh_statistics(container):
        print(f"analyzed {table} (statistics missing or stale: autovacuum has not run on it)")
    service = posture_service(container)
    firms, first, last = _universe(container, service)
    rng = random.Random(seed)
    asks = [_ask(rng, firms, first, last) for _ in range(queries)]
    _sizes(container, len(firms), first, last)

    posture = _time(asks, lambda a: _posture_handler(service, a))
    _line("posture handler, no HTTP", posture, queries)
    verdict = "within" if posture.p99 < P99_TARGET_MS else "OVER"
    print(f"{'':<34}({verdict} the {P99_TARGET_MS:.0f} ms p99 target)")
    _line("residency handler, no HTTP", _time(asks, lambda a: _residency_handler(service, a)),
          queries)
    http = _time_http(container, asks[:HTTP_QUERIES])
    _line("posture over HTTP, in-process", http, len(asks[:HTTP_QUERIES]))
    known = (a for a in asks if _answered(lambda a: _posture_handler(service, a), a))
    _replays(container, list(islice(known, REPLAYS)), posture)


# the ledger --------------------------------------------------------------------------------


def _catch_up(container: Container) -> None:
    runner = ProjectionRunner(container)
    head = container.store.head()
    target = head.position if head else 0
    before = runner.findings.tracking(PROJECTION_NAME)
    if before >= target:
        print(f"projection caught up at:          {before:>12,}")
        return
    started = time.perf_counter()
    reached = runner.catch_up()
    elapsed = time.perf_counter() - started
    done = reached - before
    print(f"projection catch-up:              {done:>12,} events in {elapsed:,.1f} s "
          f"({done / elapsed:,.0f} events/s, from {before:,} to {reached:,}, "
          "including loading the world up to the start)")


def _universe(container: Container, service: PostureService
              ) -> tuple[list[str], datetime, datetime]:
    """Every firm ever recorded, and the first and last record times of the log."""
    head = container.store.head()
    first = container.store.entries(after=0, limit=1)
    if head is None or not first:
        raise SystemExit("the ledger is empty: build one with python -m bench build")
    reading = service.reading(moment_of(AS_OF_TO, head.recorded_at))
    return sorted(service.firm_facts(reading)), first[0].recorded_at, head.recorded_at


def _ask(rng: random.Random, firms: list[str], first: datetime, last: datetime) -> Ask:
    days = (AS_OF_TO - AS_OF_FROM).days
    span = (last - first).total_seconds()
    return Ask(rng.choice(firms), AS_OF_FROM + timedelta(days=rng.randint(0, days)),
               first + timedelta(seconds=rng.uniform(0, span)))


def _sizes(container: Container, firms: int, first: datetime, last: datetime) -> None:
    d = container.store.dialect
    counts = {}
    with d.transaction(commit=False) as cursor:
        for name, table in (("events", d.seals_table), ("findings rows", d.findings_table),
                            ("residency rows", d.residency_table)):
            cursor.execute(f"SELECT count(*) AS n FROM {table}")
            counts[name] = int(cursor.fetchone()["n"])
    print(f"events in the log:                {counts['events']:>12,}")
    print(f"firms:                            {firms:>12,}")
    print(f"findings rows (all versions):     {counts['findings rows']:>12,}")
    print(f"residency rows (all versions):    {counts['residency rows']:>12,}")
    print(f"recorded between:                 {format_time(first)} and {format_time(last)}")


# what the handlers compute -----------------------------------------------------------------


def _posture_handler(service: PostureService, ask: Ask) -> dict[str, Any]:
    """api.routes.firms.read_posture without HTTP (min_position is None, so no wait)."""
    reading, posture = service.firm_posture(ask.firm_id, moment_of(ask.as_of, ask.known_at))
    return posture_json(posture, reading)


def _residency_handler(service: PostureService, ask: Ask) -> dict[str, Any]:
    """api.routes.firms.read_residency without HTTP."""
    _, residency = service.firm_residency(ask.firm_id, moment_of(ask.as_of, ask.known_at))
    return {"status": residency.status.value,
            "findings": [finding_json(f) for f in residency.findings],
            "processing": [processing_json(p) for p in residency.processing]}


def _time(asks: list[Ask], query: Callable[[Ask], object]) -> Timings:
    for ask in asks[:WARM_UP]:  # connections opened, statements planned once
        _answered(query, ask)
    seconds, not_found = [], 0
    for ask in asks:
        started = time.perf_counter()
        found = _answered(query, ask)
        seconds.append(time.perf_counter() - started)
        not_found += not found
    return Timings(seconds, not_found)


def _answered(query: Callable[[Ask], object], ask: Ask) -> bool:
    """Whether the firm was known at the moment (a 404 is timed as served)."""
    try:
        query(ask)
    except RecordNotFoundError:
        return False
    return True


def _time_http(container: Container, asks: list[Ask]) -> Timings:
    """Through the real app: auth (one key lookup), validation, the handler, the request log
    line and JSON. The reader key it makes stays in the ledger's key table."""
    key = KeyRing(container.store).create(Role.READER, "bench-posture")[1]
    headers = {"Authorization": f"Bearer {key}"}
    app = create_app(container=container, workers=False)

    def get(ask: Ask) -> None:
        params = {"as_of": ask.as_of.isoformat(), "known_at": format_time(ask.known_at)}
        answer = client.get(f"/v1/firms/{ask.firm_id}/posture", params=params,
                            headers=headers)
        if answer.status_code == 404:
            raise RecordNotFoundError("firm", ask.firm_id)
        answer.raise_for_status()

    with TestClient(app) as client:
        return _time(asks, get)


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """Log lines rendered as the service renders them (their cost is part of a request),
    written nowhere, so that only the figures are printed."""
    configure_logging("json", "info")
    root = logging.getLogger()
    with open(os.devnull, "w") as sink:
        for handler in root.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(sink)
        yield


# replays -----------------------------------------------------------------------------------


def _replays(container: Container, asks: list[Ask], posture: Timings) -> None:
    """The same questions answered from the raw log, as POST /v1/replays with one firm_id
    (the whole log up to known_at is folded, whichever firm is asked for)."""
    service = ReplayService(container)
    replayed = []
    for ask in asks:
        day, known_at = resolve_times(ask.as_of, ask.known_at)
        started = time.perf_counter()
        result = service.replay(day, known_at, [ask.firm_id])
        ms = 1000 * (time.perf_counter() - started)
        agrees = {True: "agrees", False: "DIFFERS", None: "no verdict"}[
            result.consistent_with_projections]
        print(f"replay {ask.firm_id:<12} {result.events_replayed:>9,} events "
              f"{ms:>9,.0f} ms  ratio {ms / posture.p50:>7,.0f}x p50, "
              f"{ms / posture.p99:>6,.0f}x p99  ({agrees} with the read model)")
        replayed.append(ms)
    if not replayed:
        return
    fastest = min(replayed)
    verdict = "meets" if fastest / posture.p99 >= TIMES_FASTER else "MISSES"
    print(f"fastest replay / posture p50:     {fastest / posture.p50:>12,.0f}x")
    print(f"fastest replay / posture p99:     {fastest / posture.p99:>12,.0f}x ({verdict} the "
          f"{TIMES_FASTER}x target)")


def _line(label: str, timings: Timings, count: int) -> None:
    missing = f", {timings.not_found:,} not yet known" if timings.not_found else ""
    print(f"{label + ':':<34}{timings.p50:>9,.2f} ms p50 {timings.p99:>8,.2f} ms p99 "
          f"{timings.max:>8,.2f} ms max  ({count:,} queries{missing})")
