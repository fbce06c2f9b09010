"""What a signature vouches for, on SQLite and on PostgreSQL: only heads that extend the latest
checkpoint are signed (a rewritten log raises an integrity alarm instead), the checkpoints
and the database's key refuse edits, and every process on one database signs with one key."""

import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from fastapi.testclient import TestClient
from structlog.testing import capture_logs

from api.app import create_app
from bench.serving import free_port
from infra.bootstrap import Container, bootstrap
from infra.checkpoints import (
    Checkpointer,
    CheckpointRefusedError,
    CheckpointStore,
    KeyRegistry,
    SigningKey,
    SigningKeyMismatchError,
    read_public_key,
    signature_holds,
    signing_key_for,
)
from infra.keys import KeyRing, Role
from infra.settings import Settings
from tests.support.databases import database_for
from tests.support.logs import append_in_commits, rehash_from, run_sql

Headers = dict[str, str]
CHIPLEDGER = Path(sys.executable).parent / "chipledger"
ROOT = Path(__file__).parents[2]
FIRMS = 30
FORGED_AT = 20
HONEST, FORGED = b'"hq_country":"SG"', b'"hq_country":"KP"'


def firms(first: int, last: int) -> list[dict[str, Any]]:
    return [{"type": "firms", "body": {"id": f"firm-{n}", "name": f"Firm {n}",
                                       "hq_country": "SG"}} for n in range(first, last + 1)]


def checkpoint_count(container: Container) -> int:
    with container.store.dialect.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT count(*) AS n FROM {container.store.dialect.checkpoints_table}")
        return int(cursor.fetchone()["n"])


def integrity_alarms(client: TestClient) -> list[dict[str, Any]]:
    body = client.get("/readyz").json()
    return [a for a in body["alarms"] if a["component"] == "integrity"]


class OneRound(threading.Event):
    """A stop signal that lets a background loop run exactly one round, in this thread."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


# --- 1. signatures only over extensions ----------------------------------------------------

class TestSignaturesOnlyOverExtensions:
    def test_a_log_rehashed_from_position_20_is_refused_a_signature_and_raises_an_alarm(
            self, container, client, as_role, writer, admin):
        auditor = as_role("auditor")
        # Step 1: thirty firms are recorded and an auditor has the head signed.
        append_in_commits(container, firms(1, FIRMS))
        signed = client.post("/v1/integrity/checkpoints", headers=auditor)
        assert signed.status_code == 201, signed.text
        assert signed.json()["position"] == FIRMS
        # Step 2: someone with database access makes firm 20 North Korean and rehashes the
        # chain from there: on its own, the log still verifies.
        rehash_from(container, FORGED_AT, HONEST, FORGED)
        verification = client.post("/v1/integrity/verification", headers=auditor).json()
        assert (verification["ok"], verification["verified_through"]) == (True, FIRMS)
        # Step 3: signing the forged head as it is, or once the log has grown, is refused
        # with a problem naming the checkpoint's position; nothing is signed.
        with capture_logs() as logs:
            for grow in (False, True):
                if grow:
                    assert client.post("/v1/firms", headers=writer, json={
                        "id": "firm-31", "name": "Firm 31", "hq_country": "SG"}
                    ).status_code == 201
                refused = client.post("/v1/integrity/checkpoints", headers=auditor)
                assert refused.status_code == 409, refused.text
                assert refused.headers["content-type"] == "application/problem+json"
                problem = refused.json()
                assert problem["type"].endswith("/checkpoint-refused")
                assert f"position {FIRMS} now has hash" in problem["detail"]
                assert "the log was rewritten" in problem["detail"]
                assert "nothing was signed" in problem["detail"]
        assert checkpoint_count(container) == 1
        assert client.get("/v1/integrity/checkpoints/latest",
                          headers=auditor).json() == signed.json()
        # Step 4: an export would sign the head too: refused the same way.
        exported = client.get("/v1/exports", headers=auditor)
        assert exported.status_code == 409
        assert exported.json()["type"].endswith("/checkpoint-refused")
        assert checkpoint_count(container) == 1
        # Step 5: the refusal is an error in the log, an alarm in /readyz, a count in /metrics.
        errors = [e for e in logs if e["event"] == "checkpoint_refused"]
        assert errors
        assert all(e["log_level"] == "error" for e in errors)
        assert errors[0]["checkpoint_position"] == FIRMS
        assert client.get("/readyz").json()["status"] == "degraded"
        # The checkpointer's alarm; the Merkle integrator, seeing the same rewrite, may raise
        # its own beside it (key "merkle"), and the metric counts them all.
        alarms = integrity_alarms(client)
        [alarm] = [a for a in alarms if a["key"] == "checkpoint"]
        assert {a["key"] for a in alarms} <= {"checkpoint", "merkle", "merkle-checkpoint"}
        assert (alarm["key"], alarm["position"]) == ("checkpoint", FIRMS)
        assert "the log was rewritten" in alarm["reason"]
        metrics = client.get("/metrics", headers=admin).text
        counted = re.search(r'^chipledger_alarms\{component="integrity"\} (\S+)$', metrics, re.M)
        assert counted is not None
        assert 1 <= float(counted.group(1)) <= 3

    def test_a_log_cut_below_the_latest_checkpoint_is_refused(self, container, client, as_role):
        auditor = as_role("auditor")
        append_in_commits(container, firms(1, FIRMS))
        assert client.post("/v1/integrity/checkpoints", headers=auditor).status_code == 201
        d = container.store.dialect
        run_sql(container.settings.database_url, [
            f"DELETE FROM {d.events_table} WHERE {d.events_id} IN "
            f"(SELECT notification_id FROM {d.seals_table} WHERE position > 25)",
            f"DELETE FROM {d.seals_table} WHERE position > 25"], owner_bypass=True)
        refused = client.post("/v1/integrity/checkpoints", headers=auditor)
        assert refused.status_code == 409, refused.text
        assert f"the log ends at position 25, before the latest checkpoint's {FIRMS}" in \
            refused.json()["detail"]
        assert integrity_alarms(client)[0]["position"] == 26

    def test_an_event_edited_after_the_checkpoint_without_rehashing_is_refused(
            self, container, client, as_role):
        auditor = as_role("auditor")
        append_in_commits(container, firms(1, 10))
        assert client.post("/v1/integrity/checkpoints", headers=auditor).status_code == 201
        append_in_commits(container, firms(11, FIRMS))
        d = container.store.dialect
        literal = "X'00'" if container.settings.backend == "sqlite" else "'\\x00'::bytea"
        run_sql(container.settings.database_url, [
            f"UPDATE {d.events_table} SET state = {literal} WHERE {d.events_id} = "
            f"(SELECT notification_id FROM {d.seals_table} WHERE position = 15)"],
            owner_bypass=True)
        refused = client.post("/v1/integrity/checkpoints", headers=auditor)
        assert refused.status_code == 409, refused.text
        assert "the chain breaks at position 15, after the checkpoint at 10" in \
            refused.json()["detail"]

    def test_the_background_checkpointer_refuses_too_and_the_alarm_stays_until_restored(
            self, database_url, tmp_path):
        settings = Settings(database_url=database_url, log_format="console",
                            signing_key_file=str(tmp_path / "key.pem"),
                            checkpoint_every_events=1)
        container = bootstrap(settings)
        try:
            checkpointer = Checkpointer(container, signing_key_for(container))
            latest = CheckpointStore(container.store).latest
            # Step 1: the worker's checkpointer signs the head of thirty firms.
            append_in_commits(container, firms(1, FIRMS))
            checkpointer.run(OneRound())
            assert latest().position == FIRMS
            # Step 2: the log is rehashed from position 20 and grows by one event.
            rehash_from(container, FORGED_AT, HONEST, FORGED)
            append_in_commits(container, firms(31, 31))
            # Step 3: its rounds refuse to sign, log an error and keep the alarm.
            for _ in range(2):
                with capture_logs() as logs:
                    checkpointer.run(OneRound())
                assert latest().position == FIRMS
                assert [e["log_level"] for e in logs if e["event"] == "checkpoint_refused"] \
                    == ["error"]
                [alarm] = container.alarms.active("integrity")
                assert alarm.position == FIRMS
            with pytest.raises(CheckpointRefusedError, match="the log was rewritten"):
                checkpointer.checkpoint_now()
            # Step 4: once the log is restored, the next round signs the head and the alarm
            # clears.
            rehash_from(container, FORGED_AT, FORGED, HONEST)
            checkpointer.run(OneRound())
            assert latest().position == FIRMS + 1
            assert container.alarms.active("integrity") == []
        finally:
            container.close()

    def test_a_latest_checkpoint_not_signed_by_the_database_key_is_refused(
            self, container, client, as_role):
        # Someone with database access adds a checkpoint signed by a key of their own.
        append_in_commits(container, firms(1, 10))
        head = container.store.head()
        assert head is not None
        stranger = SigningKey.load_or_create(Path(str(container.settings.signing_key_file)
                                                  + ".stranger"))
        CheckpointStore(container.store).add(stranger.sign(head.position, head.hash,
                                                           head.recorded_at))
        append_in_commits(container, firms(11, 12))
        refused = client.post("/v1/integrity/checkpoints", headers=as_role("auditor"))
        assert refused.status_code == 409, refused.text
        assert "is not signed by this database's key" in refused.json()["detail"]


# --- 2. checkpoints and the key refuse edits ------------------------------------------------

def refused_edit(database_url: str, statement: str) -> None:
    with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
        run_sql(database_url, [statement])


class TestCheckpointsAreAppendOnly:
    @pytest.mark.parametrize("statement", [
        "UPDATE chipledger_checkpoints SET hash = 'x'",
        "DELETE FROM chipledger_checkpoints",
        "DELETE FROM chipledger_checkpoints WHERE position = 10",
        "UPDATE chipledger_signing_key SET public_key = 'x'",
        "DELETE FROM chipledger_signing_key",
    ])
    def test_updates_and_deletes_are_refused(self, container, client, as_role, database_url,
                                            statement):
        append_in_commits(container, firms(1, 10))
        checkpoint = client.post("/v1/integrity/checkpoints", headers=as_role("auditor")).json()
        refused_edit(database_url, statement)
        assert checkpoint_count(container) == 1
        assert CheckpointStore(container.store).latest().to_json() == checkpoint
        assert KeyRegistry(container.store).registered().key_id == checkpoint["key_id"]

    @pytest.mark.parametrize("table", ["chipledger_checkpoints", "chipledger_signing_key"])
    def test_truncate_is_refused_on_postgresql(self, container, client, as_role, database_url,
                                               table):
        if not database_url.startswith("postgresql"):
            pytest.skip("SQLite has no TRUNCATE (its DELETE is refused above)")
        append_in_commits(container, firms(1, 10))
        assert client.post("/v1/integrity/checkpoints",
                           headers=as_role("auditor")).status_code == 201
        refused_edit(database_url, f"TRUNCATE {table}")
        assert checkpoint_count(container) == 1


# --- 3. one signing key per database ---------------------------------------------------------

def started(database_url: str, key_file: Path) -> Container:
    return bootstrap(Settings(database_url=database_url, log_format="console",
                              signing_key_file=str(key_file)))


class TestOneKeyPerDatabase:
    def test_a_process_with_another_key_file_cannot_sign_for_the_database(
            self, database_url, tmp_path):
        first, second = started(database_url, tmp_path / "a.pem"), \
            started(database_url, tmp_path / "b.pem")
        try:
            # Step 1: the first process to sign registers its key in the database.
            key = signing_key_for(first)
            assert KeyRegistry(first.store).registered().key_id == key.key_id
            # Step 2: a second process with a key file of its own is refused its key, in one
            # line that names both keys and what to do.
            with pytest.raises(SigningKeyMismatchError) as refused:
                signing_key_for(second)
            other = SigningKey.load_or_create(tmp_path / "b.pem")
            message = str(refused.value)
            assert "\n" not in message
            assert key.key_id in message
            assert other.key_id in message
            assert "CHIPLEDGER_SIGNING_KEY_FILE" in message
            # Step 3: an API process with that key does not start ...
            with pytest.raises(SigningKeyMismatchError), \
                    TestClient(create_app(container=second)):
                pass
        finally:
            first.close()
            second.close()
        # Step 4: ... nor do `chipledger worker` and `chipledger export`: one line, exit 2.
        env = {"CHIPLEDGER_DATABASE_URL": database_url, "CHIPLEDGER_LOG_LEVEL": "warning",
               "CHIPLEDGER_SIGNING_KEY_FILE": str(tmp_path / "b.pem")}
        for command in (["worker"], ["export", str(tmp_path / "export.ndjson")]):
            # a process, not in this one: a worker that did start would run until stopped
            result = subprocess.run([str(CHIPLEDGER), *command],
                                    env={"PATH": os.environ["PATH"], **env},
                                    capture_output=True, text=True, timeout=60, check=False)
            assert result.returncode == 2, (command, result.stdout, result.stderr)
            assert result.stderr.strip().count("\n") == 0, result.stderr
            assert f"is not this database's signing key {key.key_id}" in result.stderr
            assert result.stdout == ""
        assert not (tmp_path / "export.ndjson").exists()

    def test_processes_with_the_same_key_agree(self, database_url, tmp_path):
        api_side, worker_side = started(database_url, tmp_path / "k.pem"), \
            started(database_url, tmp_path / "k.pem")
        try:
            keys = KeyRing(api_side.store)
            auditor = {"Authorization": f"Bearer {keys.create(Role.AUDITOR)[1]}"}
            append_in_commits(api_side, firms(1, 3))
            with TestClient(create_app(container=api_side)) as api:
                published = api.get("/v1/integrity/public-key", headers=auditor).json()
                # The worker signs the head; the key the API publishes verifies it ...
                checkpoint = Checkpointer(worker_side,
                                          signing_key_for(worker_side)).checkpoint_now()
                assert checkpoint is not None
                assert signature_holds(checkpoint, read_public_key(json.dumps(published)))
                # ... and the API, signing on from the worker's checkpoint, uses that key too.
                append_in_commits(api_side, firms(4, 5))
                signed = api.post("/v1/integrity/checkpoints", headers=auditor)
                assert signed.status_code == 201, signed.text
                assert (signed.json()["position"], signed.json()["key_id"]) == \
                    (5, published["key_id"])
        finally:
            api_side.close()
            worker_side.close()

    def test_a_database_signed_before_keys_were_registered_keeps_the_key_it_signed_with(
            self, database_url, tmp_path):
        container = started(database_url, tmp_path / "new.pem")
        try:
            # Step 1: a checkpoint signed by the old key, before keys were registered.
            append_in_commits(container, firms(1, 3))
            head = container.store.head()
            assert head is not None
            old = SigningKey.load_or_create(tmp_path / "old.pem")
            CheckpointStore(container.store).add(old.sign(head.position, head.hash,
                                                          head.recorded_at))
            # Step 2: a process with a new key file may not take over the database ...
            with pytest.raises(SigningKeyMismatchError, match=old.key_id):
                signing_key_for(container)
            assert KeyRegistry(container.store).registered().key_id == old.key_id
        finally:
            container.close()
        # Step 3: ... a process with the old key file signs on.
        container = started(database_url, tmp_path / "old.pem")
        try:
            append_in_commits(container, firms(4, 4))
            checkpoint = Checkpointer(container, signing_key_for(container)).checkpoint_now()
            assert checkpoint is not None
            assert (checkpoint.position, checkpoint.key_id) == (4, old.key_id)
        finally:
            container.close()


# --- 4. the docker-compose layout -------------------------------------------------------------

def compose_services() -> tuple[dict[str, Any], set[str]]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"], set(compose.get("volumes") or {})


def as_container(service: dict[str, Any], volumes: Path, database_url: str,
                 port: int) -> tuple[list[str], dict[str, str]]:
    """A compose service's command and environment for a process on this machine: its named
    volumes under `volumes`, its database the test's, its port a free one."""
    mounts = {target: volumes / name for name, target in
              (mount.split(":")[:2] for mount in service.get("volumes", []))}
    env = {name: str(value) for name, value in service.get("environment", {}).items()}
    for name, value in env.items():
        for target, source in mounts.items():
            if value.startswith(target + "/"):
                env[name] = str(source) + value.removeprefix(target)
    env["CHIPLEDGER_DATABASE_URL"] = database_url
    command = [str(CHIPLEDGER) if part == "chipledger" else part for part in service["command"]]
    command = ["127.0.0.1" if part == "0.0.0.0" else part for part in command]
    return [str(port) if part == "8000" else part for part in command], env


def wait_for(condition: Callable[[], bool], processes: list[subprocess.Popen[bytes]],
             what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        for process in processes:
            assert process.poll() is None, f"{process.args[1]} exited while waiting for {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_compose_gives_the_api_and_the_worker_one_signing_key():
    services, volumes = compose_services()
    api, worker = services["api"], services["worker"]
    key_file = api["environment"]["CHIPLEDGER_SIGNING_KEY_FILE"]
    assert worker["environment"]["CHIPLEDGER_SIGNING_KEY_FILE"] == key_file
    shared = {mount.split(":")[0] for mount in api["volumes"]} & \
        {mount.split(":")[0] for mount in worker["volumes"]} & volumes
    assert any(key_file.startswith(mount.split(":")[1] + "/") for mount in api["volumes"]
               if mount.split(":")[0] in shared)


def test_the_image_keeps_the_key_where_compose_shares_it():
    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    services, _ = compose_services()
    key_file = services["api"]["environment"]["CHIPLEDGER_SIGNING_KEY_FILE"]
    assert f"ENV CHIPLEDGER_SIGNING_KEY_FILE={key_file}" in dockerfile
    assert f"VOLUME {Path(key_file).parent}" in dockerfile
    # The image holds every package the distribution installs.
    packages = [name.rstrip("*") for name in
                tomllib.loads((ROOT / "pyproject.toml").read_text())
                ["tool"]["setuptools"]["packages"]["find"]["include"]]
    assert all(f"COPY {name} {name}" in dockerfile for name in packages), packages


@pytest.mark.slow
@pytest.mark.postgres
def test_the_compose_layout_publishes_the_key_its_worker_signs_with(tmp_path):
    """`serve --no-workers` and `worker` as docker-compose.yml runs them, each in a filesystem
    of its own but for the compose volumes, on one PostgreSQL database."""
    services, _ = compose_services()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with database_for("postgres", tmp_path) as url:
        processes = []
        try:
            for name in ("api", "worker"):
                command, env = as_container(services[name], tmp_path / "volumes", url, port)
                own = tmp_path / name  # the container's own filesystem
                own.mkdir()
                env |= {"CHIPLEDGER_AUTH": "disabled", "CHIPLEDGER_LOG_LEVEL": "warning",
                        "CHIPLEDGER_CHECKPOINT_EVERY_EVENTS": "1",
                        "CHIPLEDGER_POLL_INTERVAL": "0.1", "PATH": os.environ["PATH"]}
                processes.append(subprocess.Popen(command, env=env, cwd=own,
                                                  stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.PIPE))
            wait_for(lambda: answers(base + "/readyz"), processes, "the API")
            # Step 1: a firm is recorded through the API; the worker signs the head.
            assert httpx.post(base + "/v1/firms", timeout=30, json={
                "id": "alibaba", "name": "Alibaba Group", "hq_country": "CN"}
            ).status_code == 201
            wait_for(lambda: answers(base + "/v1/integrity/checkpoints/latest"), processes,
                     "the worker's checkpoint")
            checkpoint = httpx.get(base + "/v1/integrity/checkpoints/latest", timeout=10).json()
            published = httpx.get(base + "/v1/integrity/public-key", timeout=10).text
            # Step 2: the key the API publishes is the key the worker signed with, and an
            # auditor holding it proves the log extends the worker's checkpoint.
            assert json.loads(published)["key_id"] == checkpoint["key_id"]
            saved = tmp_path / "checkpoint.json"
            saved.write_text(json.dumps(checkpoint))
            verified = subprocess.run(
                [str(CHIPLEDGER), "verify", "--against", str(saved), "--public-key", published],
                env={"PATH": os.environ["PATH"], "CHIPLEDGER_DATABASE_URL": url,
                     "CHIPLEDGER_LOG_LEVEL": "warning"},
                capture_output=True, text=True, timeout=60, check=False)
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert "extends checkpoint 1, signed by the trusted key" in verified.stdout
            # Step 3: neither process was refused its key: both still run.
            assert [process.poll() for process in processes] == [None, None]
        finally:
            for process in processes:
                process.terminate()
                process.communicate(timeout=30)
