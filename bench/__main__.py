"""python -m bench: build a synthetic ledger, then measure it against baselines run alongside.

  python -m bench build   --events 1000000 --database-url URL   # the ledger the others read
  python -m bench rebuild --database-url URL   # findings rebuild vs the library's projection
  python -m bench replay  --database-url URL   # fold and judge vs the library's scan
  python -m bench verify  --database-url URL   # chain verification vs the library's scan
  python -m bench posture --database-url URL   # posture latency vs replaying the firm
  python -m bench explain --database-url URL   # plans of the point-in-time reads
  python -m bench ingest  --events 200000 --database-url URL-OF-AN-EMPTY-SCHEMA  # vs COPY
  python -m bench appends --clients 64 --seconds 10 --database-url URL  # [--processes N]
  python -m bench merkle  --events 200000 [--database-url URL]  # Merkle tree integration vs
                        # hashing alone; with URL, catching up that ledger and proof latency
  python -m bench webhooks --events 20000 --rate 500 --seconds 10  # [--database-url EMPTY]

Each measurement that matters for memory runs in a child process, so its peak resident set
size (ru_maxrss) is its own. Every figure is printed with its ratio to the baseline measured
in the same run.
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

from api.appends import parse_batch_line
from bench.appends import main as appends_main
from bench.ingest import main as ingest_main
from bench.rebuild import child_library_projection, child_rebuild
from bench.synthetic import ledger
from infra.bootstrap import bootstrap
from infra.keys import command_line_user
from infra.service import AppendService
from infra.settings import Settings

BATCH = 2000


def build(url: str, events: int) -> None:
    container = bootstrap(Settings(database_url=url))
    service = AppendService(container)
    started, done, lines = time.perf_counter(), 0, []
    try:
        for line in ledger(events):
            lines.append(line)
            if len(lines) == BATCH:
                done += _append(service, lines)
                lines = []
                if done % 50_000 < BATCH:
                    rate = done / (time.perf_counter() - started)
                    print(f"  {done:>9,} events appended ({rate:,.0f}/s)", flush=True)
        if lines:
            done += _append(service, lines)
    finally:
        container.close()
    elapsed = time.perf_counter() - started
    print(f"built {done:,} events in {elapsed:.1f} s ({done / elapsed:,.0f} events/s)")


def _append(service: AppendService, lines: list[dict[str, Any]]) -> int:
    appends = [parse_batch_line(json.dumps(line), n) for n, line in enumerate(lines, 1)]
    answer = service.append(appends, recorded_by=command_line_user(), batch=True)
    return int(answer.body["appended"])


def child_replay(url: str) -> None:
    """Replay the whole log from the raw events and judge every firm (in a child)."""
    from datetime import UTC, date, datetime

    from infra.replay import judge, replay_world

    container = bootstrap(Settings(database_url=url))
    started = time.perf_counter()
    head = container.store.head()
    world, count = replay_world(container.store, head.position if head else 0)
    folded = time.perf_counter()
    firms = sorted(f.record_id for f in world.of_kind("firm"))
    judge(world, firms, date(2025, 6, 1))
    judged = time.perf_counter()
    container.close()
    print(json.dumps({"events": count, "fold_seconds": folded - started,
                      "total_seconds": judged - started, "firms": len(firms),
                      "at": datetime.now(UTC).isoformat()}))


def child_library_scan(url: str) -> None:
    """Baseline: the plain eventsourcing library reading and decoding every event."""
    from domain.application import Ledger
    from infra.bootstrap import library_env

    env = library_env(Settings(database_url=url))
    env.pop("APPLICATION_RECORDER_TOPIC")
    app = Ledger(env=env)
    started, count, start = time.perf_counter(), 0, 1
    while True:
        page = app.recorder.select_notifications(start, limit=5000)
        for notification in page:
            app.mapper.to_domain_event(notification)
        count += len(page)
        if len(page) < 5000:
            break
        start = page[-1].id + 1
    app.close()
    print(json.dumps({"events": count, "seconds": time.perf_counter() - started}))


def _child(command: str, url: str, *extra: str) -> tuple[dict[str, Any], float]:
    """Run `python -m bench <command>` in a child; its JSON answer and the peak RSS so far of
    any child (ru_maxrss of children is the largest child so far: run the big one last)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    output = subprocess.run([sys.executable, "-m", "bench", command, "--database-url", url,
                             *extra], capture_output=True, text=True, check=True).stdout
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return json.loads(output.strip().splitlines()[-1]), max(peak_kib, before) / 1024


def replay(url: str) -> None:
    scan, scan_mib = _child("_library_scan", url)
    ours, ours_mib = _child("_replay", url)
    scan_rate = scan["events"] / scan["seconds"]
    fold_rate = ours["events"] / ours["fold_seconds"]
    total_rate = ours["events"] / ours["total_seconds"]
    print(f"events in the log:                {ours['events']:>12,}")
    print(f"baseline, library scan+decode:    {scan_rate:>12,.0f} events/s  "
          f"(peak RSS {scan_mib:,.0f} MiB)")
    print(f"replay, stream and fold:          {fold_rate:>12,.0f} events/s  "
          f"ratio {fold_rate / scan_rate:.2f}")
    print(f"replay, fold and judge {ours['firms']:,} firms: {total_rate:>9,.0f} events/s  "
          f"ratio {total_rate / scan_rate:.2f}")
    verdict = "within" if ours_mib < 1024 else "OVER"
    print(f"replay peak RSS:                  {ours_mib:>12,.0f} MiB ({verdict} the 1 GiB "
          "target)")


def rebuild(url: str, baseline_events: int) -> None:
    library, _ = _child("_library_projection", url, "--events", str(baseline_events))
    ours, ours_mib = _child("_rebuild", url)
    library_rate = library["events"] / library["seconds"]
    rate = ours["events"] / ours["seconds"]
    print(f"baseline, library per-event projection: {library_rate:>9,.0f} events/s  "
          f"({library['events']:,} events)")
    print(f"rebuild of the findings read model:      {rate:>9,.0f} events/s  "
          f"ratio {rate / library_rate:.1f}  ({ours['events']:,} events, "
          f"{ours['seconds']:.1f} s)")
    verdict = "within" if ours_mib < 1024 else "OVER"
    print(f"rebuild peak RSS:                        {ours_mib:>9,.0f} MiB ({verdict} the "
          "1 GiB target)")


def _lazy(module: str) -> Any:
    """Import a bench module when its command runs (posture imports the whole app)."""
    import importlib

    return importlib.import_module(module)


def _conninfo(url: str) -> str:
    """A psycopg connection string from our database URL (without its schema parameter)."""
    if not url.startswith("postgresql"):
        raise SystemExit("ingest compares with PostgreSQL's COPY: give a postgresql:// URL")
    return url.split("?", 1)[0]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["build", "replay", "appends", "rebuild", "ingest",
                                            "verify", "posture", "explain", "merkle", "webhooks",
                                            "_replay", "_library_scan", "_rebuild",
                                            "_library_projection"])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default="sqlite:///bench.db")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--processes", type=int, default=1, help="appends: API processes")
    parser.add_argument("--rate", type=int, default=500, help="webhooks: messages a second")
    args = parser.parse_args()
    {"build": lambda: build(args.database_url, args.events),
     "replay": lambda: replay(args.database_url),
     "appends": lambda: appends_main(args.database_url, args.clients, args.seconds,
                                            args.processes),
     "rebuild": lambda: rebuild(args.database_url, min(args.events, 20_000)),
     "verify": lambda: _lazy("bench.verify").main(args.database_url),
     "posture": lambda: _lazy("bench.posture").main(args.database_url, args.queries),
     "explain": lambda: _lazy("bench.explain").main(args.database_url),
     "merkle": lambda: _lazy("bench.merkle").main(
         args.events, url=None if args.database_url == parser.get_default("database_url")
         else args.database_url, queries=args.queries),
     "webhooks": lambda: _lazy("bench.webhooks").main(
         None if args.database_url == "sqlite:///bench.db" else args.database_url,
         args.events, args.rate, args.seconds),
     "ingest": lambda: ingest_main(args.database_url, _conninfo(args.database_url),
                                   args.events),
     "_rebuild": lambda: child_rebuild(args.database_url),
     "_library_projection": lambda: child_library_projection(args.database_url, args.events),
     "_replay": lambda: child_replay(args.database_url),
     "_library_scan": lambda: child_library_scan(args.database_url)}[args.command]()


if __name__ == "__main__":
    main()
