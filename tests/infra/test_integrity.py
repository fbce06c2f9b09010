"""The sealed log: the database refuses edits, verification finds tampering, and a writer
killed in the middle of a batch leaves nothing partial."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from tests.support.data import record_world
from tests.support.logs import run_sql

CLI = [str(Path(sys.executable).parent / "chipledger")]


def events_table(database_url: str) -> str:
    return "stored_events" if database_url.startswith("sqlite") else "ledger_events"


def events_id(database_url: str) -> str:
    return "rowid" if database_url.startswith("sqlite") else "notification_id"


def cli(database_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url, "CHIPLEDGER_LOG_LEVEL": "warning"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


class TestTheDatabaseRefusesEdits:
    @pytest.mark.parametrize("statement", [
        "UPDATE {events} SET topic = 'x'",
        "DELETE FROM {events}",
        "UPDATE chipledger_seals SET hash = 'x'",
        "DELETE FROM chipledger_seals",
    ])
    def test_update_and_delete_through_a_normal_connection_are_refused(
        self, client, writer, as_role, database_url, statement
    ):
        record_world(client, writer)
        sql = statement.format(events=events_table(database_url))
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            run_sql(database_url, [sql])
        answer = client.post("/v1/integrity/verification", headers=as_role("auditor")).json()
        assert (answer["ok"], answer["verified_through"]) == (True, 10)


class TestVerificationFindsTampering:
    def test_an_untouched_log_verifies(self, client, writer, as_role, database_url):
        record_world(client, writer)
        answer = client.post("/v1/integrity/verification", headers=as_role("auditor")).json()
        assert answer["ok"] is True
        assert answer["verified_through"] == 10
        result = cli(database_url, "verify")
        assert result.returncode == 0, result.stderr
        assert "verified 10 events" in result.stdout

    def test_an_event_edited_behind_the_triggers_is_reported_at_its_position(
        self, client, writer, as_role, database_url
    ):
        record_world(client, writer)
        table, ident = events_table(database_url), events_id(database_url)
        # Step 1: as the database owner, change the lease (position 8) from 2048 to 4096 chips.
        if database_url.startswith("sqlite"):
            change = (f"UPDATE {table} SET state = CAST(replace(CAST(state AS TEXT), '2048', "
                      f"'4096') AS BLOB)")
        else:
            change = (f"UPDATE {table} SET state = convert_to(replace(convert_from(state, "
                      f"'UTF8'), '2048', '4096'), 'UTF8')")
        run_sql(database_url, [
            f"{change} WHERE {ident} = (SELECT notification_id FROM chipledger_seals "
            "WHERE position = 8)"
        ], owner_bypass=True)
        # Step 2: the API and the CLI both name position 8.
        answer = client.post("/v1/integrity/verification", headers=as_role("auditor")).json()
        assert answer["ok"] is False
        assert answer["first_mismatch"] == 8
        assert answer["verified_through"] == 7
        result = cli(database_url, "verify")
        assert result.returncode == 1
        assert "position 8" in result.stdout

    def test_a_deleted_event_is_reported_as_a_missing_position(
        self, client, writer, as_role, database_url
    ):
        record_world(client, writer)
        run_sql(database_url, ["DELETE FROM chipledger_seals WHERE position = 5"],
                owner_bypass=True)
        answer = client.post("/v1/integrity/verification", headers=as_role("auditor")).json()
        assert (answer["ok"], answer["first_mismatch"]) == (False, 5)


KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from api.appends import parse_batch_line
    from infra.bootstrap import bootstrap
    from infra.seal import RecordedBy, Submission
    from infra.settings import Settings

    marker = Path(sys.argv[1])
    container = bootstrap(Settings())
    lines = [
        '{"type": "firms", "body": {"id": "firm-%d", "name": "Firm %d", "hq_country": "SG"}}'
        % (n, n) for n in range(2000)
    ]
    staged = container.ledger.stage(parse_batch_line(l, n) for n, l in enumerate(lines, 1))

    def hang_inside_the_transaction(seals):
        # Called by the recorder after events and seals are written, before commit.
        marker.write_text(str(len(seals)))
        time.sleep(120)

    container.ledger.commit(staged, submissions=[Submission(
        RecordedBy("cli:test", "test", "cli"), hang_inside_the_transaction, 201)])
""")


class TestAWriterKilledMidBatch:
    def test_leaves_nothing_partial_in_the_log(
        self, client, writer, as_role, database_url, tmp_path
    ):
        # Step 1: a small world is recorded.
        record_world(client, writer)
        # Step 2: another process stages 2,000 firms and is killed inside its transaction.
        marker = tmp_path / "inside-transaction"
        env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url}
        child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(marker)], env=env,
                                 cwd=Path(__file__).parents[2])
        try:
            _wait_for(marker.exists, child, timeout=60)
            assert marker.read_text() == "2000"  # every event was written, not yet committed
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
        # Step 3: the log holds exactly what it held before, and still verifies.
        integrity = client.get("/v1/integrity", headers=writer).json()
        assert integrity["head_position"] == 10
        assert client.get("/v1/firms/firm-0", headers=writer).status_code == 404
        assert client.post("/v1/integrity/verification",
                           headers=as_role("auditor")).json()["ok"] is True
        # Step 4: the ledger takes the next append at the next position.
        answer = client.post("/v1/firms", headers=writer,
                             json={"id": "after-crash", "name": "After", "hq_country": "SG"})
        assert answer.status_code == 201, answer.text
        assert answer.json()["position"] == 11


def _wait_for(condition: Callable[[], bool], child: subprocess.Popen[bytes],
              timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if child.poll() is not None:
            raise AssertionError(f"writer exited early with {child.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError("writer never reached its transaction")
        time.sleep(0.05)
