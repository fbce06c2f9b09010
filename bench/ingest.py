"""Bulk ingest against raw psycopg COPY, in one run.

Ours: the synthetic ledger's lines through the bulk path that `POST /v1/events:batch` and
`chipledger import` take (parsed and validated, staged as drafts, sealed, one transaction a
batch) into an empty ledger. The baseline: the same number of rows shaped like the library's
events table (uuid, version, topic, state) copied with psycopg's COPY into a scratch table.
"""

import json
import time
import uuid

import psycopg

from bench.synthetic import ledger
from infra.bootstrap import bootstrap
from infra.gc_pause import gc_paused
from infra.keys import command_line_user
from infra.service import AppendService
from infra.settings import Settings


def copy_baseline(conninfo: str, events: int) -> float:
    """Rows per second of raw COPY into a fresh table with the events table's key."""
    state = json.dumps({"record_id": "x" * 12, "data": {"firm_id": "firm-1", "n": 1}}).encode()
    with psycopg.connect(conninfo) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_copy_baseline")
        conn.execute("CREATE TABLE bench_copy_baseline (originator_id uuid, originator_version "
                     "bigint, topic text, state bytea, notification_id bigserial, "
                     "PRIMARY KEY (originator_id, originator_version))")
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor, cursor.copy(
                "COPY bench_copy_baseline (originator_id, originator_version, topic, state) "
                "FROM STDIN") as copy:
            for _ in range(events):
                copy.write_row((uuid.uuid4(), 1, "chipledger.LeaseSigned", state))
        conn.commit()
        seconds = time.perf_counter() - started
        conn.execute("DROP TABLE bench_copy_baseline")
        conn.commit()
    return events / seconds


def ingest(url: str, events: int, batch: int = 10_000) -> tuple[int, float]:
    """Events appended and seconds taken, through the batch path, batch by batch."""
    from api.appends import parse_batch_line

    container = bootstrap(Settings(database_url=url))
    service = AppendService(container)
    sender = command_line_user()
    lines = [json.dumps(line) for line in ledger(events)]  # generated before the clock starts
    started, done = time.perf_counter(), 0
    try:
        for start in range(0, len(lines), batch):
            chunk = lines[start:start + batch]
            with gc_paused():  # as the batch endpoint and `chipledger import` parse
                appends = [parse_batch_line(line, n) for n, line in enumerate(chunk, 1)]
            done += int(service.append(appends, recorded_by=sender, batch=True
                                       ).body["appended"])
    finally:
        container.close()
    return done, time.perf_counter() - started


def main(url: str, conninfo: str, events: int) -> None:
    copy_rate = copy_baseline(conninfo, events)
    done, seconds = ingest(url, events)
    rate = done / seconds
    print(f"baseline, raw psycopg COPY:              {copy_rate:>9,.0f} rows/s  "
          f"({events:,} rows)")
    print(f"bulk ingest (batch path, 10,000 a batch): {rate:>8,.0f} events/s  "
          f"ratio {rate / copy_rate:.2f}  ({done:,} events, {seconds:.1f} s)")
