"""Every event says who recorded it, and the hash chain says so too.

HTTP appends are sealed with the API key's {key_id, name, role} (with auth disabled, the
documented `auth-disabled` admin), batches with their sender's, each request of a group commit
with its own; the command line's appends with `cli:<os user>`. It shows in histories, the feed
and exports, and an edit of it behind the triggers or in an export fails verification at its
position. A database sealed before recorded_by existed is refused at start.
"""

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.appends import parse_batch_line
from infra.bootstrap import Container, bootstrap
from infra.bundle import canonical_json
from infra.group_commit import GroupCommitter, _Request
from infra.keys import KeyRing, Role
from infra.seal import RecordedBy
from infra.service import AppendService
from infra.settings import Settings
from infra.store import OutdatedLedgerError, UnattributedEventError
from tests.support.data import ALIBABA, ALIBABA_SG, H100
from tests.support.logs import tamper

CLI = [str(Path(sys.executable).parent / "chipledger")]
NDJSON = {"Content-Type": "application/x-ndjson"}


def key_of(container: Container, role: Role, name: str) -> tuple[dict[str, str], dict[str, str]]:
    """A new API key's headers, and the recorded_by its appends should carry."""
    key_id, key = KeyRing(container.store).create(role, name)
    return {"Authorization": f"Bearer {key}"}, {"key_id": key_id, "name": name,
                                                 "role": role.value}


def feed(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = client.get("/v1/events", headers=headers).json()["events"]
    return events


def cli(settings: Settings, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": settings.database_url,
           "CHIPLEDGER_SIGNING_KEY_FILE": str(settings.signing_key_file),
           "CHIPLEDGER_LOG_LEVEL": "warning", "LOGNAME": user, "USER": user}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


class TestHttpAppends:
    def test_each_event_names_the_api_key_that_appended_it(self, client, container):
        writer, writer_is = key_of(container, Role.WRITER, "ingest-bot")
        admin, admin_is = key_of(container, Role.ADMIN, "Chen Wei")
        # Step 1: a writer records a chip and a firm; an admin records a subsidiary.
        assert client.post("/v1/chip-models", json=H100, headers=writer).status_code == 201
        assert client.post("/v1/firms", json=ALIBABA, headers=writer).status_code == 201
        assert client.post("/v1/firms", json=ALIBABA_SG, headers=admin).status_code == 201
        # Step 2: the admin corrects the writer's firm.
        corrected = client.post("/v1/firms/alibaba/corrections", headers=admin,
                                json={"name": "Alibaba Group Holding", "reason": "legal name"})
        assert corrected.status_code == 200, corrected.text
        # Step 3: the feed and the history say who recorded what.
        assert [e["recorded_by"] for e in feed(client, writer)] == [
            writer_is, writer_is, admin_is, admin_is]
        history = client.get("/v1/firms/alibaba/history", headers=writer).json()["events"]
        assert [(e["type"], e["recorded_by"]) for e in history] == [
            ("FirmRegistered", writer_is), ("FirmCorrected", admin_is)]

    def test_a_batch_carries_its_senders_name_on_every_event(self, client, container):
        writer, writer_is = key_of(container, Role.WRITER, "bulk loader")
        lines = "\n".join(json.dumps({"type": t, "body": b}) for t, b in (
            ("chip-models", H100), ("firms", ALIBABA), ("firms", ALIBABA_SG)))
        answer = client.post("/v1/events:batch", content=lines, headers={**writer, **NDJSON})
        assert answer.status_code == 201, answer.text
        assert [e["recorded_by"] for e in feed(client, writer)] == [writer_is] * 3

    def test_with_auth_disabled_events_name_the_auth_disabled_principal(self, database_url,
                                                                        tmp_path):
        container = bootstrap(Settings(database_url=database_url, auth="disabled",
                                       signing_key_file=str(tmp_path / "key.pem")))
        try:
            with TestClient(create_app(container=container)) as client:
                assert client.post("/v1/firms", json=ALIBABA).status_code == 201
                assert [e["recorded_by"] for e in feed(client, {})] == [
                    {"key_id": "auth-disabled", "name": "auth disabled", "role": "admin"}]
        finally:
            container.close()

    def test_webhook_endpoint_events_name_the_admin(self, database_url, tmp_path):
        settings = Settings(database_url=database_url, webhook_allow_local=True,
                            signing_key_file=str(tmp_path / "key.pem"))
        container = bootstrap(settings)
        try:
            admin, admin_is = key_of(container, Role.ADMIN, "ops")
            with TestClient(create_app(container=container)) as client:
                created = client.post("/v1/webhooks/endpoints", headers=admin, json={
                    "url": "http://127.0.0.1:9/hook", "event_types": ["posture.changed"]})
                assert created.status_code == 201, created.text
                assert [e["recorded_by"] for e in feed(client, admin)] == [admin_is]
        finally:
            container.close()


class TestGroupCommit:
    def test_requests_of_different_keys_in_one_commit_each_carry_their_own(self, container):
        # Step 1: three requests from three senders are committed in one transaction.
        senders = [RecordedBy("k-1", "one", "writer"), RecordedBy("k-2", "two", "writer"),
                   RecordedBy("k-3", "three", "admin")]
        requests = [_Request([parse_batch_line(json.dumps({"type": "firms", "body": {
            "id": f"firm-{n}", "name": f"Firm {n}", "hq_country": "SG"}}), 1)], sender,
            None, "") for n, sender in enumerate(senders)]
        committer = GroupCommitter(AppendService(container))
        committer._commit(requests)
        assert committer.groups == 1
        # Step 2: one commit time, three senders, each on its own request's event.
        entries = list(container.store.iter_entries())
        assert len({e.recorded_at for e in entries}) == 1
        by_record = {e.record_id: e.recorded_by for e in entries}
        assert by_record == {f"firm-{n}": sender for n, sender in enumerate(senders)}

    def test_a_commit_naming_no_sender_writes_nothing(self, container):
        staged = container.ledger.stage([parse_batch_line(json.dumps(
            {"type": "firms", "body": ALIBABA}), 1)])
        with pytest.raises(UnattributedEventError):
            container.ledger.commit(staged)
        assert container.store.head() is None


class TestTheCommandLine:
    def test_import_and_demo_are_recorded_by_the_os_user(self, settings, tmp_path):
        # Step 1: alice imports two records; bob records the demo story.
        lines = tmp_path / "records.ndjson"
        lines.write_text("\n".join(json.dumps({"type": t, "body": b}) for t, b in (
            ("chip-models", {**H100, "id": "imported-h100"}),
            ("firms", {**ALIBABA, "id": "imported-firm"}))))
        imported = cli(settings, "import", str(lines), user="alice")
        assert imported.returncode == 0, imported.stderr
        demo = cli(settings, "demo", user="bob")
        assert demo.returncode == 0, demo.stderr
        # Step 2: the log says who ran each command.
        container = bootstrap(settings)
        try:
            senders = [e.recorded_by for e in container.store.iter_entries()]
        finally:
            container.close()
        alice, bob = RecordedBy("cli:alice", "alice", "cli"), RecordedBy("cli:bob", "bob", "cli")
        assert senders[:2] == [alice, alice]
        assert len(senders) > 2
        assert set(senders[2:]) == {bob}


class TestVerification:
    def test_an_export_carries_recorded_by_and_verifies_offline_only_unedited(
        self, client, container, settings, tmp_path
    ):
        writer, writer_is = key_of(container, Role.WRITER, "ingest-bot")
        for collection, body in (("chip-models", H100), ("firms", ALIBABA),
                                 ("firms", ALIBABA_SG)):
            assert client.post(f"/v1/{collection}", json=body, headers=writer).status_code == 201
        public = tmp_path / "service.pub.pem"
        public.write_text(client.get("/v1/integrity/public-key",
                                     headers=writer).json()["public_key_pem"])
        # Step 1: the export shows who recorded each event, and verifies offline.
        bundle = tmp_path / "bundle.ndjson"
        exported = cli(settings, "export", str(bundle))
        assert exported.returncode == 0, exported.stderr
        header, *lines = bundle.read_text().splitlines()
        assert [json.loads(line)["recorded_by"] for line in lines] == [writer_is] * 3
        verified = cli(settings, "verify", "--file", str(bundle), "--public-key", str(public))
        assert verified.returncode == 0, verified.stdout + verified.stderr
        # Step 2: the second event claimed for someone else, written as chipledger would.
        event = json.loads(lines[1])
        event["recorded_by"] = {"key_id": "k-admin", "name": "admin", "role": "admin"}
        edited = tmp_path / "edited.ndjson"
        edited.write_text("\n".join([header, lines[0], canonical_json(event), lines[2]]) + "\n")
        refused = cli(settings, "verify", "--file", str(edited), "--public-key", str(public))
        assert refused.returncode == 1
        assert "the chain breaks at position 2: its content does not match its hash" \
            in refused.stdout

    def test_an_edit_in_the_database_fails_verification_and_verify_against(
        self, client, container, settings, database_url, tmp_path
    ):
        writer, _ = key_of(container, Role.WRITER, "ingest-bot")
        auditor, _ = key_of(container, Role.AUDITOR, "auditor")
        for collection, body in (("chip-models", H100), ("firms", ALIBABA),
                                 ("firms", ALIBABA_SG)):
            assert client.post(f"/v1/{collection}", json=body, headers=writer).status_code == 201
        # Step 1: an auditor keeps a checkpoint of the head, and the service's public key.
        kept = tmp_path / "kept.json"
        kept.write_text(json.dumps(client.post("/v1/integrity/checkpoints",
                                               headers=auditor).json()))
        public = client.get("/v1/integrity/public-key", headers=auditor).json()["public_key_pem"]
        trusted = ("--against", str(kept), "--public-key", public)
        assert cli(settings, "verify", *trusted).returncode == 0
        # Step 2: someone with database access claims the firm was recorded by an admin.
        forged = RecordedBy("k-admin", "admin", "admin").canonical
        tamper(database_url, f"UPDATE chipledger_seals SET recorded_by = '{forged}' "
                             "WHERE position = 2")
        # Step 3: the history shows the claim, and every verification names position 2.
        history = client.get("/v1/firms/alibaba/history", headers=writer).json()["events"]
        assert history[0]["recorded_by"]["key_id"] == "k-admin"
        answer = client.post("/v1/integrity/verification", headers=auditor).json()
        assert (answer["ok"], answer["first_mismatch"], answer["algorithm"]) == (
            False, 2, "sha256-chain-v2")
        against = cli(settings, "verify", *trusted)
        assert against.returncode == 1
        assert "position 2" in against.stdout


class TestADatabaseOfTheFirstChain:
    def test_is_refused_at_start_saying_what_to_do(self, database_url):
        # A seals table as sha256-chain-v1 wrote it: no recorded_by column.
        old = ("CREATE TABLE chipledger_seals (position bigint PRIMARY KEY, "
               "notification_id bigint NOT NULL UNIQUE, originator_id text NOT NULL, "
               "originator_version bigint NOT NULL, recorded_at text NOT NULL, "
               "prev_hash text NOT NULL, hash text NOT NULL)")
        if database_url.startswith("sqlite"):
            with sqlite3.connect(database_url.removeprefix("sqlite:///")) as conn:
                conn.execute(old)
        else:
            base, _, query = database_url.partition("?schema=")
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'SET search_path TO "{query}"')
                conn.execute(old)
        with pytest.raises(OutdatedLedgerError) as refused:
            bootstrap(Settings(database_url=database_url))
        message = str(refused.value)
        assert "\n" not in message
        assert "sha256-chain-v1" in message
        assert "point CHIPLEDGER_DATABASE_URL at a new database" in message
