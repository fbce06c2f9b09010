"""The PostgreSQL hot standby of the test primary that `.ci/replica` makes (port 5433).

Replica tests need CHIPLEDGER_TEST_REPLICA_URL (what `.ci/replica` prints) beside
CHIPLEDGER_TEST_POSTGRES_URL. Without it they skip, saying why; with
CHIPLEDGER_REQUIRE_POSTGRES=1 (as in CI, whose .ci/run makes the standby) they fail.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.support.databases import REQUIRE_POSTGRES

REPLICA_URL = os.environ.get("CHIPLEDGER_TEST_REPLICA_URL", "")


def replica_url() -> str:
    if not REPLICA_URL:
        reason = ("replica tests need CHIPLEDGER_TEST_REPLICA_URL: run .ci/replica (a hot "
                  "standby of the test primary on port 5433) and export the URL it prints")
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (CHIPLEDGER_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    return REPLICA_URL


def _standby(sql: str) -> object:
    with psycopg.connect(REPLICA_URL.split("?")[0], autocommit=True) as conn:
        row = conn.execute(sql).fetchone()
        return row[0] if row else None


@contextmanager
def replay_paused() -> Iterator[None]:
    """The standby stops replaying what the primary commits (it still receives it), and
    replays it all again afterwards whatever happened."""
    _standby("SELECT pg_wal_replay_pause()")
    try:
        deadline = time.monotonic() + 10
        while _standby("SELECT pg_get_wal_replay_pause_state()") != "paused":
            assert time.monotonic() < deadline, "the standby did not pause its replay"
            time.sleep(0.02)
        yield
    finally:
        _standby("SELECT pg_wal_replay_resume()")
