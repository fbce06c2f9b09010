"""Audit (api.md, Audit; domain.md, Audit replay) on SQLite and on PostgreSQL: replays from the
raw log that check the read models, what-ifs that store nothing, posture diffs, signed
checkpoints that catch a rewritten log, and export bundles verified offline, byte for byte.

Most tests record the demo story (`api.cli.story.record_story`, 39 events through 2025) and ask the
API about it. CLI commands run as real subprocesses where it matters (no database reachable,
the signing key of the test); byte flips run the same `chipledger verify` in-process.
"""

import base64
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import cli as chipledger
from api.cli import story as demo
from infra.bootstrap import Container
from infra.bundle import BundleError, verify_bundle
from infra.seal import format_time
from infra.settings import Settings
from tests.support.data import LEASE, WORLD
from tests.support.logs import run_sql

Headers = dict[str, str]
Json = dict[str, Any]

CLI = [str(Path(sys.executable).parent / "chipledger")]
STORY_EVENTS = 39
LATE_RECORDS = 2  # the story's last step: a corrected ship date, a due diligence filed late
STORY_FIRMS = ["alibaba", "alibaba-sg", "bytedance", "bytedance-sg", "deepseek",
               "johor-compute", "lingxi-trading", "zhiyuan-compute"]
# No database can be opened there: offline verification runs with it, so it never opens one.
UNREACHABLE = "sqlite:////nonexistent-chipledger-dir/nowhere/ledger.db"
RED_FLAG = "us-bis-iaas-red-flag-2025"
US_AC_CHIPS_2023 = {"any_of": [{"min_tpp": 4800}, {"min_tpp": 1600,
                                                    "min_performance_density": 5.92}],
                    "origin_countries": ["US"]}
# A proposed lease: DeepSeek trains on H100s in Johor after the 2025-05-13 red-flag guidance.
DEEPSEEK_JOHOR = {"id": "deepseek-johor-h100", "firm_id": "deepseek",
                  "data_centre_id": "my-johor", "chip_model": "nvidia-h100", "chip_count": 512,
                  "starts_on": "2025-06-01", "purposes": ["training"]}
# A draft rule: overseas training on advanced US chips needs a BIS licence, from 2025-06-01.
DRAFT_RULE = {"id": "us-bis-iaas-licence-draft", "authority": "US-BIS",
              "title": "Draft: licence for IaaS training of D:5-headquartered firms",
              "citation": "Draft rule, not published", "effective_from": "2025-06-01",
              "rule": {"kind": "remote_compute_access", "lessee_hq_countries": ["CN", "MO"],
                       "exempt_dc_countries": ["US"], "chips": US_AC_CHIPS_2023,
                       "purposes": ["training"], "severity": "violation",
                       "licence_authority": "US-BIS"}}
RESCIND_RED_FLAG = {"type": "regulations/rescission", "id": RED_FLAG,
                    "body": {"effective_from": "2025-06-01", "reason": "what if it went?"}}


# --- helpers ---------------------------------------------------------------------------------

def integrity(client: TestClient, headers: Headers) -> Json:
    response = client.get("/v1/integrity", headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def events_after(client: TestClient, headers: Headers, position: int) -> list[Json]:
    response = client.get("/v1/events", params={"after": position}, headers=headers)
    assert response.status_code == 200, response.text
    events: list[Json] = response.json()["events"]
    return events


def wait_for_projection(client: TestClient, headers: Headers, position: int) -> None:
    """Read-your-writes: the posture read waits until the read model reached `position`."""
    for _ in range(5):
        response = client.get("/v1/firms/alibaba-sg/posture",
                              params={"min_position": position}, headers=headers)
        if response.status_code != 503:
            break
    assert response.status_code == 200, response.text
    assert response.json()["position"] >= position


def posture(client: TestClient, headers: Headers, firm: str, **params: str) -> Json:
    response = client.get(f"/v1/firms/{firm}/posture", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def replay(client: TestClient, headers: Headers, **body: Any) -> Json:
    response = client.post("/v1/replays", json=body, headers=headers)
    assert response.status_code == 200, response.text
    answer: Json = response.json()
    return answer


def by_firm(items: list[Json]) -> dict[str, Json]:
    return {item["firm_id"]: item for item in items}


def rows(findings: list[Json]) -> list[tuple[str, str, str, str, str | None]]:
    return sorted((f["subject_id"], f["regulation_id"], f["status"], f["valid_from"],
                   f["valid_to"]) for f in findings)


def record_story_late_records_later(container: Container,
                                    monkeypatch: pytest.MonkeyPatch) -> str:
    """The story without its last step, then (after the clock moved on) the last step: the
    late records. Returns a known_at that sees everything but them."""
    full = demo.story
    monkeypatch.setattr(demo, "story", lambda: full()[:-1])
    demo.record_story(container)
    head = container.store.head()
    assert head is not None
    assert head.position == STORY_EVENTS - LATE_RECORDS
    monkeypatch.setattr(demo, "story", full)
    time.sleep(0.02)  # SQLite's clock ticks in milliseconds
    demo.record_story(container)  # the first steps again, idempotently, then the late ones
    return format_time(head.recorded_at)


def run_cli(settings: Settings, *args: str, database_url: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url or settings.database_url,
           "CHIPLEDGER_SIGNING_KEY_FILE": str(settings.signing_key_file),
           "CHIPLEDGER_LOG_LEVEL": "warning"}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60,
                          check=False)


def verify_in_process(*args: str) -> tuple[int, str]:
    """`chipledger verify ...` in this process (cheap), with no database reachable. A crash
    is not a verdict: only a clean exit counts."""
    result = CliRunner().invoke(chipledger, ["verify", *args],
                                env={"CHIPLEDGER_DATABASE_URL": UNREACHABLE})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"crashed: {result.exception!r}\n{result.output}"
    return result.exit_code, result.output


def owner_sql(container: Container, statements: list[str]) -> None:
    run_sql(container.settings.database_url, statements, owner_bypass=True)


def count(container: Container, table: str) -> int:
    dialect = container.store.dialect
    with dialect.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT count(*) AS n FROM {table}")
        return int(cursor.fetchone()["n"])


def tamper_state(container: Container, position: int, old: str, new: str) -> None:
    """As the database owner, behind the triggers, edit the stored state of one event."""
    d = container.store.dialect
    if container.settings.backend == "sqlite":
        change = f"CAST(replace(CAST(state AS TEXT), '{old}', '{new}') AS BLOB)"
    else:
        change = f"convert_to(replace(convert_from(state, 'UTF8'), '{old}', '{new}'), 'UTF8')"
    owner_sql(container, [
        f"UPDATE {d.events_table} SET state = {change} WHERE {d.events_id} = "
        f"(SELECT notification_id FROM {d.seals_table} WHERE position = {position})"])


def position_of(client: TestClient, headers: Headers, kind: str, record_id: str) -> int:
    response = client.get(f"/v1/{kind}/{record_id}/history", headers=headers)
    assert response.status_code == 200, response.text
    position: int = response.json()["events"][0]["position"]
    return position


def write_json(path: Path, value: Json) -> Path:
    path.write_text(json.dumps(value))
    return path


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    changed = bytearray(data)
    changed[index] ^= mask
    return bytes(changed)


@pytest.fixture
def story(container: Container, client: TestClient, writer: Headers) -> int:
    """The demo story, recorded and projected: its head position."""
    demo.record_story(container)
    wait_for_projection(client, writer, STORY_EVENTS)
    return STORY_EVENTS


@pytest.fixture
def auditor(as_role: Callable[[str], Headers]) -> Headers:
    return as_role("auditor")


@pytest.fixture
def reader(as_role: Callable[[str], Headers]) -> Headers:
    return as_role("reader")


# --- 1. replays ------------------------------------------------------------------------------

class TestReplays:
    def test_a_replay_of_the_story_recomputes_what_the_projections_say(
            self, client, story, auditor, reader, writer):
        # Step 1: a replay of the whole log on 2025-06-15, as known now.
        answer = replay(client, auditor, as_of="2025-06-15")
        assert answer["as_of"] == "2025-06-15"
        assert answer["position"] == answer["events_replayed"] == story
        assert answer["projection_position"] == story
        assert answer["consistent_with_projections"] is True
        assert answer["differences"] == []
        assert "hypothetical" not in answer
        firms = by_firm(answer["firms"])
        assert list(firms) == STORY_FIRMS
        # Step 2: the replayed answers are the story's: Alibaba's Singapore arm trains in
        # Johor under the red flag (attention until due diligence on 2025-06-20) and fine-tunes
        # on Chinese bank data in Singapore (violation); Zhiyuan's H20s came without a licence.
        assert {f: a["status"] for f, a in firms.items()} == {
            "alibaba": "compliant", "alibaba-sg": "violation", "bytedance": "compliant",
            "bytedance-sg": "compliant", "deepseek": "compliant", "johor-compute": "compliant",
            "lingxi-trading": "compliant", "zhiyuan-compute": "violation"}
        assert rows(firms["alibaba-sg"]["findings"]) == [
            ("alibaba-johor-h100", RED_FLAG, "attention", "2025-05-13", "2025-06-20"),
            ("alibaba-sg-bank-ft", "cn-pipl-sensitive-export", "violation", "2025-06-01",
             "2025-10-01")]
        assert rows(firms["zhiyuan-compute"]["findings"]) == [
            ("ship-h20-2025-05", "us-bis-h20-2025", "violation", "2025-05-01", None)]
        assert firms["alibaba-sg"]["residency"] == {"status": "violation", "processing": [
            {"data_subject_country": "CN", "processed_in": "SG",
             "activity_id": "alibaba-sg-bank-ft", "status": "violation"}]}
        # Step 3: firm by firm, exactly what the read model answers (findings, evidence and all).
        for firm, replayed in firms.items():
            projected = posture(client, reader, firm, as_of="2025-06-15")
            assert projected["position"] == story
            assert (replayed["status"], replayed["findings"]) == \
                (projected["status"], projected["findings"]), firm
        residency = client.get("/v1/firms/alibaba-sg/residency",
                               params={"as_of": "2025-06-15"}, headers=reader).json()
        assert firms["alibaba-sg"]["residency"]["processing"] == residency["processing"]
        # Step 4: firm_ids narrows the replay to those firms.
        narrowed = replay(client, auditor, as_of="2025-06-15",
                          firm_ids=["zhiyuan-compute", "bytedance-sg"])
        assert [f["firm_id"] for f in narrowed["firms"]] == ["zhiyuan-compute", "bytedance-sg"]
        assert narrowed["events_replayed"] == story
        assert narrowed["consistent_with_projections"] is True
        # Step 5: a firm the ledger never heard of is a 422 naming it; a writer or reader may
        # not replay (auditor's job); and a replay appends nothing.
        refused = client.post("/v1/replays", headers=auditor,
                              json={"as_of": "2025-06-15", "firm_ids": ["deepseek", "nobody"]})
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == "body.firm_ids"
        assert error["type"] == "unknown_reference"
        assert "'nobody'" in error["msg"]
        for role in (writer, reader):
            assert client.post("/v1/replays", json={"as_of": "2025-06-15"},
                               headers=role).status_code == 403
        assert integrity(client, reader)["head_position"] == story
        assert events_after(client, reader, story) == []

    def test_a_replay_as_known_before_the_late_records_replays_fewer_events(
            self, client, container, monkeypatch, auditor, reader):
        # Step 1: the story, its late records (ship date corrected, due diligence filed late)
        # recorded after known_at `before_late`.
        before_late = record_story_late_records_later(container, monkeypatch)
        wait_for_projection(client, reader, STORY_EVENTS)
        # Step 2: as known before them, 37 events replay; ByteDance's Singapore lease is still
        # flagged on 2025-07-01, and the projection said the same at that point.
        earlier = replay(client, auditor, as_of="2025-07-01", known_at=before_late)
        assert earlier["known_at"] == before_late
        assert earlier["position"] == earlier["events_replayed"] == STORY_EVENTS - LATE_RECORDS
        assert earlier["projection_position"] == STORY_EVENTS
        assert earlier["consistent_with_projections"] is True
        assert earlier["differences"] == []
        then = by_firm(earlier["firms"])
        assert rows(then["bytedance-sg"]["findings"]) == [
            ("bytedance-tuas-h100", RED_FLAG, "attention", "2025-05-13", "2026-02-01")]
        projected = posture(client, reader, "bytedance-sg", as_of="2025-07-01",
                            known_at=before_late)
        assert projected["position"] == STORY_EVENTS - LATE_RECORDS
        assert then["bytedance-sg"]["findings"] == projected["findings"]
        # Step 3: as known now, all 39: the due diligence of 2025-06-01 answers the red flag.
        now = replay(client, auditor, as_of="2025-07-01")
        assert now["position"] == now["events_replayed"] == STORY_EVENTS
        assert now["consistent_with_projections"] is True
        assert rows(by_firm(now["firms"])["bytedance-sg"]["findings"]) == [
            ("bytedance-tuas-h100", RED_FLAG, "compliant", "2025-06-01", "2026-02-01")]
        # Step 4: a replay before anything was recorded replays nothing.
        empty = replay(client, auditor, as_of="2025-07-01", known_at="2000-01-01T00:00:00Z")
        assert (empty["position"], empty["events_replayed"], empty["firms"]) == (0, 0, [])

    def test_a_corrupted_read_model_row_is_reported_as_a_difference(
            self, client, container, story, auditor, reader):
        # Step 1: someone with database access turns every violation in the read model into
        # "compliant" (the findings table is a projection: no triggers guard it).
        findings_table = "chipledger_findings"
        run_sql(container.settings.database_url,
                [f"UPDATE {findings_table} SET status = 'compliant' WHERE status = 'violation'"])
        assert posture(client, reader, "zhiyuan-compute", as_of="2025-06-15")["status"] == \
            "compliant"  # the read model now lies
        # Step 2: the replay recomputes from the log and names each finding that differs.
        answer = replay(client, auditor, as_of="2025-06-15")
        assert answer["consistent_with_projections"] is False
        assert answer["events_replayed"] == story
        assert [(d["firm_id"], d["subject_type"], d["subject_id"], d["regulation_id"],
                 d["replayed"]["status"], d["projected"]["status"])
                for d in answer["differences"]] == [
            ("alibaba-sg", "processing_activity", "alibaba-sg-bank-ft",
             "cn-pipl-sensitive-export", "violation", "compliant"),
            ("zhiyuan-compute", "shipment", "ship-h20-2025-05", "us-bis-h20-2025",
             "violation", "compliant")]
        assert by_firm(answer["firms"])["zhiyuan-compute"]["status"] == "violation"
        # Step 3: a date where no violation holds agrees still.
        assert replay(client, auditor, as_of="2025-01-15",
                      firm_ids=STORY_FIRMS)["consistent_with_projections"] is True


# --- 2. what-if ------------------------------------------------------------------------------

def assert_only(changes: list[Json], *, added: Collection[str] = (),
                touched_regulation: str | None = None) -> None:
    """Every firm's change is explained by the hypothetical records: added findings are about
    one of them (as subject or as regulation); removed or changed ones belong to the
    rescinded regulation."""
    for change in changes:
        for finding in change["added"]:
            assert {finding["subject_id"], finding["regulation_id"]} & set(added), finding
        for finding in change["removed"] + [c["after"] for c in change["changed"]]:
            assert finding["regulation_id"] == touched_regulation, finding
        if not (change["added"] or change["removed"] or change["changed"]):
            assert change["status_before"] == change["status_after"]


class TestWhatIf:
    def test_a_proposed_lease_a_draft_rule_and_a_rescission_change_only_their_findings(
            self, client, story, auditor, reader):
        head = integrity(client, reader)
        baseline = {f["firm_id"]: f["status"]
                    for f in replay(client, auditor, as_of="2025-07-01")["firms"]}
        # Step 1: DeepSeek proposes to train on 512 H100s in Johor from 2025-06-01: the red
        # flag would apply to it (attention until due diligence), and to nothing else.
        answer = replay(client, auditor, as_of="2025-07-01",
                        hypothetical=[{"type": "leases", "body": DEEPSEEK_JOHOR}])
        assert answer["hypothetical"]["events"] == 1
        assert answer["events_replayed"] == story
        assert answer["consistent_with_projections"] is None  # nothing to compare with
        changes = by_firm(answer["hypothetical"]["changes"])
        assert list(changes) == STORY_FIRMS
        assert {f: c["status_before"] for f, c in changes.items()} == baseline
        assert (changes["deepseek"]["status_before"], changes["deepseek"]["status_after"]) == \
            ("compliant", "attention")
        assert rows(changes["deepseek"]["added"]) == [
            ("deepseek-johor-h100", RED_FLAG, "attention", "2025-06-01", None)]
        assert "512 nvidia-h100 in MY" in changes["deepseek"]["added"][0]["explanation"]
        assert_only(answer["hypothetical"]["changes"], added={"deepseek-johor-h100"})
        assert sum(len(c["added"]) for c in changes.values()) == 1
        assert by_firm(answer["firms"])["deepseek"]["status"] == "attention"
        # Step 2: a draft rule requiring a BIS licence for that training: both overseas H100
        # training leases would be violations (no licence); DeepSeek's Ascend lease in Ulanqab
        # is not caught (its chips are not of US origin).
        answer = replay(client, auditor, as_of="2025-07-01",
                        hypothetical=[{"type": "regulations", "body": DRAFT_RULE}])
        changes = by_firm(answer["hypothetical"]["changes"])
        assert_only(answer["hypothetical"]["changes"], added={DRAFT_RULE["id"]})
        added = {(f, *r) for f, c in changes.items() for r in rows(c["added"])}
        assert added == {
            ("alibaba-sg", "alibaba-johor-h100", DRAFT_RULE["id"], "violation", "2025-06-01",
             "2025-10-01"),
            ("bytedance-sg", "bytedance-tuas-h100", DRAFT_RULE["id"], "violation",
             "2025-06-01", "2026-02-01")}
        assert (changes["bytedance-sg"]["status_before"],
                changes["bytedance-sg"]["status_after"]) == ("compliant", "violation")
        # Step 3: the lease and the draft together: DeepSeek's lease is caught by both.
        answer = replay(client, auditor, as_of="2025-07-01", hypothetical=[
            {"type": "regulations", "body": DRAFT_RULE},
            {"type": "leases", "body": DEEPSEEK_JOHOR}])
        assert answer["hypothetical"]["events"] == 2
        deepseek = by_firm(answer["hypothetical"]["changes"])["deepseek"]
        assert [(r[0], r[1], r[2]) for r in rows(deepseek["added"])] == [
            ("deepseek-johor-h100", DRAFT_RULE["id"], "violation"),
            ("deepseek-johor-h100", RED_FLAG, "attention")]
        assert_only(answer["hypothetical"]["changes"],
                    added={"deepseek-johor-h100", DRAFT_RULE["id"]})
        # Step 4: rescinding the red flag from 2025-06-01. On 2025-07-01 its two findings go;
        # on 2025-05-20 Alibaba's flag would end on 06-01 rather than at its due diligence.
        answer = replay(client, auditor, as_of="2025-07-01", hypothetical=[RESCIND_RED_FLAG])
        changes = by_firm(answer["hypothetical"]["changes"])
        assert_only(answer["hypothetical"]["changes"], touched_regulation=RED_FLAG)
        assert {(f, *r) for f, c in changes.items() for r in rows(c["removed"])} == {
            ("alibaba-sg", "alibaba-johor-h100", RED_FLAG, "compliant", "2025-06-20",
             "2025-10-01"),
            ("bytedance-sg", "bytedance-tuas-h100", RED_FLAG, "compliant", "2025-06-01",
             "2026-02-01")}
        answer = replay(client, auditor, as_of="2025-05-20", hypothetical=[RESCIND_RED_FLAG])
        changes = by_firm(answer["hypothetical"]["changes"])
        assert_only(answer["hypothetical"]["changes"], touched_regulation=RED_FLAG)
        [changed] = changes["alibaba-sg"]["changed"]
        assert (changed["before"]["valid_to"], changed["after"]["valid_to"]) == \
            ("2025-06-20", "2025-06-01")
        assert changed["before"]["status"] == changed["after"]["status"] == "attention"
        # Step 5: nothing of it was stored: same head, no new events, no such lease, and a
        # plain replay still agrees with the projections.
        assert integrity(client, reader) == head
        assert events_after(client, reader, story) == []
        assert client.get("/v1/leases/deepseek-johor-h100", headers=reader).status_code == 404
        assert client.get(f"/v1/regulations/{DRAFT_RULE['id']}",
                          headers=reader).status_code == 404
        plain = replay(client, auditor, as_of="2025-07-01")
        assert plain["consistent_with_projections"] is True
        assert by_firm(plain["firms"])["deepseek"]["status"] == "compliant"

    def test_an_invalid_hypothetical_is_a_422_naming_its_place_in_the_list(
            self, client, story, auditor, reader):
        cases = [
            ([RESCIND_RED_FLAG, {"type": "leases",
                                 "body": {**DEEPSEEK_JOHOR, "firm_id": "nobody"}}],
             "body.hypothetical.2.body.firm_id", "unknown_reference", "'nobody'"),
            ([{"type": "leases", "body": {**DEEPSEEK_JOHOR, "data_centre_id": "atlantis"}}],
             "body.hypothetical.1.body.data_centre_id", "unknown_reference", "'atlantis'"),
            ([RESCIND_RED_FLAG, {"type": "leases",
                                 "body": {**DEEPSEEK_JOHOR, "chip_count": -5}}],
             "body.hypothetical.2.body.chip_count", "greater_than", "greater than 0"),
            ([{"type": "spaceships", "body": {"id": "x"}}],
             "body.hypothetical.1.type", "unknown_type", "spaceships"),
        ]
        for hypothetical, field, kind, words in cases:
            response = client.post("/v1/replays", headers=auditor,
                                   json={"as_of": "2025-07-01", "hypothetical": hypothetical})
            assert response.status_code == 422, response.text
            [error] = response.json()["errors"]
            assert (error["field"], error["type"]) == (field, kind)
            assert error["loc"] == [int(p) if p.isdigit() else p for p in field.split(".")]
            assert words in error["msg"]
        assert integrity(client, reader)["head_position"] == story


# --- 3. posture diffs ------------------------------------------------------------------------

class TestPostureDiffs:
    def test_diffs_between_two_dates_and_between_two_record_times(
            self, client, container, monkeypatch, reader):
        before_late = record_story_late_records_later(container, monkeypatch)
        wait_for_projection(client, reader, STORY_EVENTS)

        def diff(firm: str, **params: str) -> Json:
            response = client.get(f"/v1/firms/{firm}/posture/diff", params=params,
                                  headers=reader)
            assert response.status_code == 200, response.text
            body: Json = response.json()
            return body

        # Step 1: Alibaba Singapore from 2025-05-01 (nothing yet) to 2025-06-15: the red flag
        # and the bank-data fine-tuning appear.
        answer = diff("alibaba-sg", from_as_of="2025-05-01", to_as_of="2025-06-15")
        assert (answer["from"]["status"], answer["to"]["status"]) == ("compliant", "violation")
        assert (answer["from"]["as_of"], answer["to"]["as_of"]) == ("2025-05-01", "2025-06-15")
        assert rows(answer["added"]) == [
            ("alibaba-johor-h100", RED_FLAG, "attention", "2025-05-13", "2025-06-20"),
            ("alibaba-sg-bank-ft", "cn-pipl-sensitive-export", "violation", "2025-06-01",
             "2025-10-01")]
        assert (answer["removed"], answer["changed"]) == ([], [])
        # Step 2: to 2025-07-01 the due diligence (2025-06-20) answers the flag: changed.
        answer = diff("alibaba-sg", from_as_of="2025-06-15", to_as_of="2025-07-01")
        [changed] = answer["changed"]
        assert (changed["before"]["status"], changed["after"]["status"]) == \
            ("attention", "compliant")
        assert changed["after"]["subject_id"] == "alibaba-johor-h100"
        assert (answer["added"], answer["removed"]) == ([], [])
        # Step 3: to 2025-10-15 the lease has ended and the fine-tuning moved to Hangzhou.
        answer = diff("alibaba-sg", from_as_of="2025-07-01", to_as_of="2025-10-15")
        assert [f["subject_id"] for f in answer["removed"]] == ["alibaba-johor-h100",
                                                               "alibaba-sg-bank-ft"]
        assert (answer["to"]["status"], answer["added"], answer["changed"]) == \
            ("compliant", [], [])
        # Step 4: the same date, two record times: ByteDance's late due diligence restates
        # 2025-07-01 from attention to compliant.
        answer = diff("bytedance-sg", from_as_of="2025-07-01", from_known_at=before_late)
        assert (answer["from"]["position"], answer["to"]["position"]) == \
            (STORY_EVENTS - LATE_RECORDS, STORY_EVENTS)
        assert answer["from"]["as_of"] == answer["to"]["as_of"] == "2025-07-01"
        assert (answer["from"]["status"], answer["to"]["status"]) == ("attention", "compliant")
        [changed] = answer["changed"]
        assert (rows([changed["before"]]), rows([changed["after"]])) == (
            [("bytedance-tuas-h100", RED_FLAG, "attention", "2025-05-13", "2026-02-01")],
            [("bytedance-tuas-h100", RED_FLAG, "compliant", "2025-06-01", "2026-02-01")])
        # Step 5: the re-export's date corrected from 07-01 to 08-01: on 2025-09-01 the US
        # finding moves with it, and Malaysia's permit rule (from 07-14) now catches it too.
        answer = diff("lingxi-trading", from_as_of="2025-09-01", from_known_at=before_late)
        assert rows(answer["added"]) == [("ship-h100-johor-reexport", "my-miti-stp-2025",
                                          "violation", "2025-08-01", None)]
        [changed] = answer["changed"]
        assert (changed["before"]["valid_from"], changed["after"]["valid_from"]) == \
            ("2025-07-01", "2025-08-01")
        assert changed["after"]["regulation_id"] == "us-bis-ac-2022"
        assert answer["removed"] == []
        # ... and on 2025-07-15 the violation is gone (the shipment had not happened yet).
        answer = diff("lingxi-trading", from_as_of="2025-07-15", from_known_at=before_late)
        assert [(f["subject_id"], f["regulation_id"]) for f in answer["removed"]] == [
            ("ship-h100-johor-reexport", "us-bis-ac-2022")]
        assert (answer["from"]["status"], answer["to"]["status"]) == ("violation", "compliant")


# --- 4. checkpoints --------------------------------------------------------------------------

class TestCheckpoints:
    def test_a_signed_checkpoint_proves_the_log_extends_it_and_catches_tampering(
            self, client, container, story, auditor, reader, writer, settings, tmp_path):
        dialect = container.store.dialect
        head = integrity(client, reader)
        # Step 1: no checkpoint yet; the public key is the one of the key file.
        assert client.get("/v1/integrity/checkpoints/latest", headers=reader).status_code == 404
        key = client.get("/v1/integrity/public-key", headers=reader).json()
        private = serialization.load_pem_private_key(
            Path(settings.signing_key_file).read_bytes(), password=None)
        assert isinstance(private, Ed25519PrivateKey)
        raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        assert key["algorithm"] == "ed25519"
        assert base64.b64decode(key["public_key"]) == raw
        assert serialization.load_pem_public_key(key["public_key_pem"].encode()).public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
        # Step 2: an auditor signs the head (a writer may not); the signature covers the
        # head's position, hash and time, and verifies with the published key.
        assert client.post("/v1/integrity/checkpoints", headers=writer).status_code == 403
        response = client.post("/v1/integrity/checkpoints", headers=auditor)
        assert response.status_code == 201, response.text
        checkpoint = response.json()
        assert (checkpoint["position"], checkpoint["hash"], checkpoint["recorded_at"]) == \
            (story, head["head_hash"], head["head_recorded_at"])
        assert (checkpoint["key_id"], checkpoint["public_key"]) == \
            (key["key_id"], key["public_key"])
        claim = {k: checkpoint[k] for k in ("algorithm", "hash", "key_id", "position",
                                            "recorded_at", "signed_at")}
        Ed25519PublicKey.from_public_bytes(raw).verify(
            base64.b64decode(checkpoint["signature"]),
            json.dumps(claim, sort_keys=True, separators=(",", ":")).encode())
        # Step 3: a checkpoint is not an event: the head does not move, it lives in a table of
        # its own, and signing again with nothing new answers the same checkpoint.
        assert integrity(client, reader) == head
        assert events_after(client, reader, story) == []
        assert client.get("/v1/integrity/checkpoints/latest",
                          headers=reader).json() == checkpoint
        assert client.post("/v1/integrity/checkpoints", headers=auditor).json() == checkpoint
        assert (count(container, dialect.checkpoints_table),
                count(container, dialect.seals_table)) == (1, story)
        # Step 4: the log grows; `verify --against` the saved checkpoint (trusting the
        # published key) proves the log extends it.
        saved = write_json(tmp_path / "cp.json", checkpoint)
        public = tmp_path / "service.pub.pem"
        public.write_text(key["public_key_pem"])
        for body in ({"id": "moonshot", "name": "Moonshot AI", "hq_country": "CN"},
                     {"id": "zhipu", "name": "Zhipu AI", "hq_country": "CN"}):
            assert client.post("/v1/firms", json=body, headers=writer).status_code == 201
        result = run_cli(settings, "verify", "--against", str(saved), "--public-key",
                         str(public))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"verified {story + 2} events" in result.stdout
        assert f"extends checkpoint {story}" in result.stdout
        # Step 5: a forged checkpoint (one signature character changed) is refused. (A key
        # that is not the service's: see the offline bundles below.)
        signature = checkpoint["signature"]
        forged_signature = signature[:10] + ("A" if signature[10] != "A" else "B") + \
            signature[11:]
        forged = write_json(tmp_path / "forged.json",
                            {**checkpoint, "signature": forged_signature})
        result = run_cli(settings, "verify", "--against", str(forged))
        assert result.returncode == 1, result.stdout + result.stderr
        assert "signature does not verify" in result.stdout
        # Step 6: behind the triggers, the owner makes Alibaba's Johor lease twice as big:
        # the event sits before the checkpoint, and verification names its position.
        lease = position_of(client, reader, "leases", "alibaba-johor-h100")
        assert lease < story
        tamper_state(container, lease, '"chip_count":2048', '"chip_count":4096')
        result = run_cli(settings, "verify", "--against", str(saved))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"MISMATCH against checkpoint at position {story}" in result.stdout
        assert f"the chain breaks at position {lease}" in result.stdout
        verification = client.post("/v1/integrity/verification", headers=auditor).json()
        assert (verification["ok"], verification["first_mismatch"]) == (False, lease)

    def test_a_truncated_and_re_extended_log_verifies_alone_but_not_against_a_checkpoint(
            self, client, container, story, auditor, reader, writer, settings, tmp_path):
        d = container.store.dialect
        checkpoint = client.post("/v1/integrity/checkpoints", headers=auditor).json()
        saved = write_json(tmp_path / "cp.json", checkpoint)
        # Step 1: the owner, behind the triggers, cuts the log back to position 30 ...
        cut = 30
        owner_sql(container, [
            f"DELETE FROM {d.events_table} WHERE {d.events_id} IN "
            f"(SELECT notification_id FROM {d.seals_table} WHERE position > {cut})",
            f"DELETE FROM {d.seals_table} WHERE position > {cut}"])
        assert integrity(client, reader)["head_position"] == cut
        # Step 2: ... and the API appends a different history on top: positions 31, 32, ...
        positions = []
        for n in range(story - cut + 1):
            response = client.post("/v1/firms", headers=writer, json={
                "id": f"shell-{n}", "name": f"Shell company {n}", "hq_country": "SC"})
            assert response.status_code == 201, response.text
            positions.append(response.json()["position"])
        assert positions == list(range(cut + 1, story + 2))
        # Step 3: the new chain is internally consistent: plain verification passes ...
        verification = client.post("/v1/integrity/verification", headers=auditor).json()
        assert (verification["ok"], verification["verified_through"]) == (True, story + 1)
        result = run_cli(settings, "verify")
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"verified {story + 1} events" in result.stdout
        # Step 4: ... which is why checkpoints matter: the one the auditor kept says the log
        # was rewritten at its position.
        result = run_cli(settings, "verify", "--against", str(saved))
        assert result.returncode == 1, result.stdout + result.stderr
        assert f"position {story} now has hash" in result.stdout
        assert checkpoint["hash"] in result.stdout
        assert "the log was rewritten" in result.stdout


# --- 5. offline bundles ----------------------------------------------------------------------

def bundle_lines(path: Path) -> list[Json]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class TestOfflineBundles:
    def test_an_export_verifies_offline_also_against_an_earlier_checkpoint(
            self, client, container, story, auditor, reader, writer, settings, tmp_path):
        # Step 1: an auditor kept the checkpoint at the story's head; the log grew since.
        earlier = client.post("/v1/integrity/checkpoints", headers=auditor).json()
        saved = write_json(tmp_path / "earlier.json", earlier)
        public = tmp_path / "service.pub.pem"
        public.write_text(client.get("/v1/integrity/public-key",
                                     headers=reader).json()["public_key_pem"])
        response = client.post("/v1/licences", headers=writer, json={
            "id": "bis-h20-zhiyuan", "authority": "US-BIS", "holder_firm_id": "zhiyuan-compute",
            "chip_models": ["nvidia-h20"], "destination_countries": ["CN"],
            "valid_from": "2025-10-01"})
        assert response.status_code == 201, response.text
        head = story + 1
        # Step 2: `chipledger export FILE` signs the head and writes the log with its seals.
        bundle = tmp_path / "bundle.ndjson"
        result = run_cli(settings, "export", str(bundle))
        assert result.returncode == 0, result.stderr
        header, *events = bundle_lines(bundle)
        assert (header["format"], header["algorithm"], header["head_position"]) == \
            ("chipledger-export-v3", "sha256-chain-v2", head)
        assert header["head_hash"] == integrity(client, reader)["head_hash"]
        assert header["checkpoint"]["position"] == head
        assert header["tree_checkpoint"].split("\n")[1] == str(head)  # the tree of them all
        assert [e["position"] for e in events] == list(range(1, head + 1))
        assert (events[-1]["record_id"], events[-1]["type"]) == \
            ("bis-h20-zhiyuan", "LicenceGranted")
        assert integrity(client, reader)["head_position"] == head  # signing moved nothing
        # Step 3: offline, with no database reachable, the bundle verifies: chain, signed
        # checkpoint (by the service's published key) and extension of the earlier checkpoint.
        result = run_cli(settings, "verify", "--file", str(bundle), "--against", str(saved),
                         "--public-key", str(public), database_url=UNREACHABLE)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"holds {head} events, chain intact, signed checkpoint ok" in result.stdout
        # Step 4: GET /v1/exports (auditor only) answers the same bytes, which verify too.
        assert client.get("/v1/exports", headers=writer).status_code == 403
        response = client.get("/v1/exports", headers=auditor)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        assert response.content == bundle.read_bytes()
        downloaded = tmp_path / "downloaded.ndjson"
        downloaded.write_bytes(response.content)
        code, output = verify_in_process("--file", str(downloaded), "--against", str(saved),
                                         "--trust-embedded-key")
        assert code == 0, output
        # Step 5: what does not hold offline: a key that is not the service's; a forged
        # earlier checkpoint; a checkpoint later than the bundle's head.
        stranger = tmp_path / "stranger.pub"
        stranger.write_text(base64.b64encode(Ed25519PrivateKey.generate().public_key()
                            .public_bytes(serialization.Encoding.Raw,
                                          serialization.PublicFormat.Raw)).decode())
        code, output = verify_in_process("--file", str(bundle), "--public-key", str(stranger))
        assert code == 1, output
        assert "signed checkpoint does not verify" in output
        forged = write_json(tmp_path / "forged.json", {**earlier, "position": story - 1})
        code, output = verify_in_process("--file", str(bundle), "--against", str(forged))
        assert code == 1, output
        assert "against the earlier checkpoint: the checkpoint's signature does not verify" \
            in output
        assert client.post("/v1/firms", headers=writer, json={
            "id": "moonshot", "name": "Moonshot AI", "hq_country": "CN"}).status_code == 201
        later = write_json(tmp_path / "later.json",
                           client.post("/v1/integrity/checkpoints", headers=auditor).json())
        code, output = verify_in_process("--file", str(bundle), "--against", str(later))
        assert code == 1, output
        assert f"the log ends at position {head}, before the checkpoint's {head + 1}" in output

    def test_flipping_any_one_byte_of_a_bundle_fails_verification(
            self, client, story, auditor, reader, tmp_path):
        response = client.get("/v1/exports", headers=auditor)
        assert response.status_code == 200
        data = response.content
        bundle = tmp_path / "bundle.ndjson"
        bundle.write_bytes(data)
        assert verify_in_process("--file", str(bundle), "--trust-embedded-key")[0] == 0
        lines = data.split(b"\n")
        lease = position_of(client, reader, "leases", "alibaba-johor-h100")
        lease_at = len(b"\n".join(lines[:lease])) + 1  # the lease's line (header is line 0)
        assert b'"record_id":"alibaba-johor-h100"' in lines[lease]

        def at(needle: bytes, start: int = 0) -> int:
            return data.index(needle, start)

        data_field = at(b'"chip_count":2048', lease_at) + len(b'"chip_count":')
        state_time = at(b'\\"_data_\\":\\"', lease_at) + len(b'\\"_data_\\":\\"')
        hash_field = at(b'"hash":"', lease_at) + len(b'"hash":"') + 12
        assert (data[data_field:data_field + 4], data[state_time:state_time + 2]) == \
            (b"2048", b"20")
        cases = {
            "a readable data field": (data_field, "its readable fields differ"),
            "the hashed state": (state_time,
                                 f"the chain breaks at position {lease}: its content"),
            "an event's hash": (hash_field, f"the chain breaks at position {lease}"),
            "the header's head position": (at(b'"head_position":') + 16,
                                           "the header's head does not match"),
            "the checkpoint's signature": (at(b'"signature":"') + 30,
                                           "signed checkpoint does not verify"),
        }
        flipped = tmp_path / "flipped.ndjson"
        for name, (index, message) in cases.items():
            flipped.write_bytes(flip(data, index))
            code, output = verify_in_process("--file", str(flipped), "--trust-embedded-key")
            assert code == 1, (name, output)
            assert message in output, (name, output)
        # And any other byte, whatever it is flipped to: a sample across the whole file, plus
        # the bytes a lenient reader would forgive: key names that have defaults, the padding
        # bits of base64, letter case in UUIDs and times, a line ending, a non-UTF-8 byte.
        uuid_at = at(b'"originator_id":"', lease_at) + len(b'"originator_id":"')
        hex_letter = uuid_at + next(i for i, c in enumerate(data[uuid_at:uuid_at + 36])
                                    if chr(c) in "abcdef")
        time_at = at(b'"recorded_at":"', lease_at) + len(b'"recorded_at":"')
        assert data[time_at + 10:time_at + 11] + data[time_at + 26:time_at + 27] == b"TZ"
        lenient = [
            (at(b'"checkpoint":') + 1, 0x01),  # "bheckpoint": no checkpoint at all
            (at(b'{"algorithm":', at(b'"checkpoint":')) + 2, 0x01),  # a default applies
            (at(b'"signature_algorithm":') + 19, 0x01),  # ditto
            (at(b'"signature_algorithm":"ed25519"') + 24, 0x01),  # "ee25519"
            (at(b'=","recorded_at"') - 1, 0x01),  # the public key's last base64 digit
            (at(b'==","signature_algorithm"') - 1, 0x02),  # the signature's last digit
            (hex_letter, 0x20), (time_at + 10, 0x20), (time_at + 26, 0x20),
            (lease_at - 1, 0x07),  # "\n" to "\r"
            (lease_at + 5, 0x80),  # not UTF-8
        ]
        rng = random.Random(20250513)
        sample = [(rng.randrange(len(data)), rng.randrange(1, 256)) for _ in range(150)]
        undetected = []
        for index, mask in lenient + sample:
            flipped.write_bytes(flip(data, index, mask))
            try:
                ok = verify_bundle(flipped).ok
            except BundleError:
                ok = False
            if ok:
                undetected.append((index, mask, data[max(0, index - 20):index + 5]))
        assert undetected == []


def test_the_database_of_the_offline_checks_cannot_be_opened(tmp_path):
    """`chipledger verify` without --file needs the database: with the URL the offline checks
    run with, it fails (so they really did without)."""
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": UNREACHABLE,
           "CHIPLEDGER_LOG_LEVEL": "warning",
           "CHIPLEDGER_SIGNING_KEY_FILE": str(tmp_path / "key.pem")}
    result = subprocess.run([*CLI, "verify"], env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 2  # a failure to start
    assert "unable to open database file" in result.stdout + result.stderr
    assert not Path(UNREACHABLE.removeprefix("sqlite:///")).parent.exists()




# --- 6. chipledger import ----------------------------------------------------------------------

def world_file(path: Path, lines: list[Json]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


class TestImport:
    def test_import_appends_every_line_of_a_file_in_one_transaction(
            self, settings, container, tmp_path):
        # A file of the story's records, one batch line each.
        lines = [{"type": collection, "body": body} for collection, body in WORLD]
        path = world_file(tmp_path / "world.ndjson", lines)

        # Imported through the bulk path: every line an event, positions in line order.
        result = run_cli(settings, "import", str(path))
        assert result.returncode == 0, result.stderr
        assert f"imported {len(lines)} lines: {len(lines)} events (positions 1-{len(lines)})" \
            in result.stdout
        entries = container.store.entries(after=0, limit=100)
        assert [e.record_id for e in entries] == [body["id"] for _, body in WORLD]

        # Importing the same file again appends nothing: every create repeats its record.
        again = run_cli(settings, "import", str(path))
        assert again.returncode == 0, again.stderr
        assert "no new events" in again.stdout

    def test_a_file_with_one_refused_line_imports_nothing(self, settings, container, tmp_path):
        # The third line names a firm no line creates.
        lines = [{"type": collection, "body": body} for collection, body in WORLD[:2]]
        lines.append({"type": "leases", "body": {**LEASE, "firm_id": "nobody"}})
        path = world_file(tmp_path / "bad.ndjson", lines)

        result = run_cli(settings, "import", str(path))
        assert result.returncode == 1
        assert "nothing imported" in result.stderr
        assert container.store.head() is None
