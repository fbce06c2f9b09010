"""Chain verification against the library's own scan of the same events (issue #6: verify the
hash chain at 200,000 events/s or more).

On an existing ledger (built by `python -m bench build`), in one process:

- the baseline: the plain eventsourcing library paging through the events table with
  `select_notifications`, 5,000 at a time, decoding nothing: the least any reader of the log
  does;
- ours: `ReadService.verify`, what `chipledger verify` and POST /v1/integrity/verification
  run: every event's seal and stored state read, and the whole chain recomputed from
  position 1.

The two alternate for a few rounds and each one's best round is printed: the machine is
shared, and the best round is the one least disturbed by other work. Per-round rates follow,
so the spread shows.
"""

import time
from collections.abc import Callable

from domain.application import Ledger
from infra.bootstrap import bootstrap, library_env
from infra.logging import configure_logging
from infra.service import ReadService
from infra.settings import Settings
from infra.verify import Verification

PAGE = 5000
TARGET = 200_000  # events/s, issue #6


def library_scan(url: str) -> int:
    """The baseline: every notification read through the library's recorder, nothing decoded."""
    env = library_env(Settings(database_url=url))
    env.pop("APPLICATION_RECORDER_TOPIC")  # the library's own recorder, not our sealing one
    app = Ledger(env=env)
    try:
        count, start = 0, 1
        while True:
            page = app.recorder.select_notifications(start, limit=PAGE)
            count += len(page)
            if len(page) < PAGE:
                return count
            start = page[-1].id + 1
    finally:
        app.close()


def main(url: str, rounds: int = 3) -> None:
    configure_logging("json", "warning")  # verify logs a line per run: keep the output figures
    container = bootstrap(Settings(database_url=url))
    results: list[Verification] = []

    def verify() -> int:
        results.append(ReadService(container).verify())
        return results[-1].verified_through

    try:
        scans: list[float] = []
        verifies: list[float] = []
        counts: set[int] = set()
        for _ in range(rounds):
            for rates, run in ((scans, lambda: library_scan(url)), (verifies, verify)):
                rate, count = _timed(run)
                rates.append(rate)
                counts.add(count)
    finally:
        container.close()
    scan_rate, verify_rate = max(scans), max(verifies)
    print(f"events in the log:                {max(counts):>12,}")
    print(f"baseline, library scan, no decode: {scan_rate:>11,.0f} events/s")
    print(f"chain verification:               {verify_rate:>12,.0f} events/s  "
          f"ratio {verify_rate / scan_rate:.2f}")
    verdict = "within" if verify_rate >= TARGET else "BELOW"
    print(f"{'':<34}({verdict} the {TARGET:,} events/s target)")
    print(f"rounds, scan:                     {_listed(scans)}")
    print(f"rounds, verification:             {_listed(verifies)}")
    last = results[-1]
    if not last.ok:
        print(f"MISMATCH at position {last.first_mismatch}: {last.reason} (verified through "
              f"{last.verified_through}): the rate above is of a partial walk")
    elif len(counts) > 1:
        print(f"the scan and the verification saw different counts {sorted(counts)}: was the "
              "ledger being written to?")


def _timed(run: Callable[[], int]) -> tuple[float, int]:
    started = time.perf_counter()
    count = run()
    return count / (time.perf_counter() - started), count


def _listed(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates) + " events/s"
