"""Posture, residency, timelines and restatements through the real HTTP API (api.md, Reads),
told as the stories of domain-facts.md §5 and domain.md, on SQLite and on PostgreSQL.

Each test records a small world as a writer, then reads it as a reader with
`min_position=<last append>` so that every read waits for the projection runner
(read-your-writes). One comment a step says what the ledger should answer and why.
"""

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from tests.support.data import ALIBABA, ALIBABA_SG, DC_JOHOR, H20, H20_RULE, H100, LICENCE

Headers = dict[str, str]
Row = tuple[str, str, str, str, str | None]  # subject_id, regulation_id, status, from, to

CHIPLEDGER = Path(sys.executable).parent / "chipledger"  # installed beside this Python
H20_REG = H20_RULE["id"]
H20_CITATION = H20_RULE["citation"]

# S1: the 2025-05-13 guidance (red flag, answered by due diligence) and the AI Diffusion rule
# (a licence for every lease, compliance from 2025-05-15, rescinded from 2025-05-13).
RED_FLAG: dict[str, Any] = {
    "id": "us-bis-iaas-red-flag-2025", "authority": "US-BIS",
    "title": "Policy statement: IaaS training for D:5-headquartered firms is a red flag",
    "citation": "BIS guidance, 2025-05-13", "effective_from": "2025-05-13",
    "rule": {"kind": "remote_compute_access", "lessee_hq_countries": ["CN", "MO"],
             "exempt_dc_countries": ["CN"], "purposes": ["training"],
             "severity": "attention"},
}
DIFFUSION: dict[str, Any] = {
    "id": "us-bis-ai-diffusion", "authority": "US-BIS",
    "title": "Framework for Artificial Intelligence Diffusion", "citation": "90 FR 4544",
    "published_on": "2025-01-15", "effective_from": "2025-01-13",
    "compliance_from": "2025-05-15",
    "rule": {"kind": "remote_compute_access", "lessee_hq_countries": ["CN", "MO"],
             "exempt_dc_countries": ["US"], "chips": {"any_of": [{"min_tpp": 4800}]},
             "severity": "violation", "licence_authority": "US-BIS"},
}
# S3: PIPL as modelled here: CN residents' sensitive data stays in CN without a CAC assessment.
PIPL: dict[str, Any] = {
    "id": "cn-pipl-art38", "authority": "CN-CAC",
    "title": "PIPL cross-border transfer of personal information", "citation": "PIPL Art. 38",
    "effective_from": "2021-11-01",
    "rule": {"kind": "data_localisation", "data_subject_countries": ["CN"],
             "sensitive_only": True, "accepted_mechanisms": ["security_assessment"]},
}
CN_BANK: dict[str, Any] = {"id": "cn-bank", "name": "A Chinese bank", "hq_country": "CN"}
DC_SINGAPORE: dict[str, Any] = {"id": "sg-dc1", "name": "Singapore DC 1", "country": "SG",
                                "operator": "Lion City Compute", "operator_hq_country": "SG"}
DC_SHANGHAI: dict[str, Any] = {"id": "sh-dc1", "name": "Shanghai DC 1", "country": "CN",
                               "operator": "Pudong Cloud", "operator_hq_country": "CN"}
FINE_TUNING: dict[str, Any] = {"id": "ft-bank-txn", "firm_id": "cn-bank",
                               "purpose": "fine_tuning", "data_subject_countries": ["CN"],
                               "sensitive": True, "subject_count": 50000,
                               "data_centre_id": "sg-dc1", "starts_on": "2025-06-01"}
LEASE: dict[str, Any] = {"id": "lease-ali-johor", "firm_id": "alibaba-sg",
                         "data_centre_id": "johor-dc1", "chip_model": "nvidia-h100",
                         "chip_count": 2048, "starts_on": "2025-04-01",
                         "ends_on": "2025-09-30", "purposes": ["training"]}


def shipment(shipment_id: str, shipped_on: str, **extra: Any) -> dict[str, Any]:
    """800 H20s from the US to Alibaba in China."""
    return {"id": shipment_id, "chip_model": "nvidia-h20", "quantity": 800,
            "from_country": "US", "to_country": "CN", "consignee_firm_id": "alibaba",
            "shipped_on": shipped_on, "exporter": "NVIDIA", **extra}


# Helpers ---------------------------------------------------------------------------------------


@dataclass
class Ledger:
    """The story's pen and eyes: appends as a writer and reads as a reader, each read waiting
    for the projection to reach the last append."""

    client: TestClient
    writer: Headers
    reader: Headers
    position: int = 0

    def record(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.client.post(f"/v1/{path}", json=body, headers=self.writer)
        assert response.status_code in (200, 201), response.text
        answer: dict[str, Any] = response.json()
        assert answer["position"] > self.position
        self.position = answer["position"]
        return answer

    def record_all(self, *records: tuple[str, dict[str, Any]]) -> None:
        for path, body in records:
            self.record(path, body)

    def get(self, path: str, *, expect: int = 200, **params: Any) -> dict[str, Any]:
        query = {"min_position": self.position,
                 **{k: v for k, v in params.items() if v is not None}}
        response = self.client.get(f"/v1/{path}", params=query, headers=self.reader)
        assert response.status_code == expect, response.text
        body: dict[str, Any] = response.json()
        return body

    def posture(self, firm: str, as_of: str, known_at: str | None = None) -> dict[str, Any]:
        body = self.get(f"firms/{firm}/posture", as_of=as_of, known_at=known_at)
        assert (body["firm_id"], body["as_of"]) == (firm, as_of)
        if known_at is None:  # now: the answer reflects everything appended so far
            assert body["position"] == self.position
        else:
            assert body["known_at"] == known_at
        return body

    def residency(self, firm: str, as_of: str) -> dict[str, Any]:
        body = self.get(f"firms/{firm}/residency", as_of=as_of)
        assert (body["firm_id"], body["as_of"], body["position"]) == (firm, as_of,
                                                                      self.position)
        return body

    def timeline(self, firm: str, start: str, end: str, known_at: str | None = None
                 ) -> list[tuple[str, str, str]]:
        body = self.get(f"firms/{firm}/timeline", **{"from": start, "to": end,
                                                     "known_at": known_at})
        assert (body["firm_id"], body["from"], body["to"]) == (firm, start, end)
        pieces = [(i["valid_from"], i["valid_to"], i["status"]) for i in body["intervals"]]
        # Consecutive and covering [from, to): each interval starts where the last one ended.
        assert pieces[0][0] == start
        assert pieces[-1][1] == end
        assert all(a[1] == b[0] for a, b in pairwise(pieces))
        return pieces


@dataclass(frozen=True)
class Seen:
    status: str
    rows: list[Row]


def seen(posture: dict[str, Any]) -> Seen:
    """A posture (or residency) answer as its status and (subject, regulation, status,
    valid_from, valid_to) rows, after checking every finding's documented fields."""
    rows = []
    for f in posture["findings"]:
        assert set(f) == {"subject_type", "subject_id", "regulation_id", "citation", "status",
                          "valid_from", "valid_to", "explanation", "evidence"}
        assert f["evidence"]
        assert all(isinstance(p, int) and p > 0 for p in f["evidence"])
        assert f["subject_id"] in f["explanation"]
        rows.append((f["subject_id"], f["regulation_id"], f["status"], f["valid_from"],
                     f["valid_to"]))
    return Seen(posture["status"], rows)


def finding(posture: dict[str, Any], subject_id: str) -> dict[str, Any]:
    [only] = [f for f in posture["findings"] if f["subject_id"] == subject_id]
    return only


def ledger_for(client: TestClient, writer: Headers,
               as_role: Callable[[str], Headers]) -> Ledger:
    return Ledger(client, writer, as_role("reader"))


def later(timestamp: str, **delta: float) -> str:
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) + timedelta(**delta)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# S2: H20 shipments across the licence requirement --------------------------------------------


def test_s2_h20_shipments_before_during_and_after_the_licence_requirement(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    ledger = ledger_for(client, writer, as_role)
    # The H20 (below 3A090: TPP 2368, PD 2.9), Alibaba (CN) and the is-informed letter of
    # 2025-04-09, modelled as an export_licence rule naming the H20 for CN/HK/MO.
    ledger.record_all(("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE))
    # A shipment on 2025-03-01, before the letter: nothing applies, so no finding at all.
    ledger.record("shipments", shipment("ship-h20-0301", "2025-03-01"))
    assert seen(ledger.posture("alibaba", "2025-03-15")) == Seen("compliant", [])

    # A shipment on 2025-05-01, inside the requirement and with no licence: a violation that
    # stays on the record from its shipped_on on.
    ledger.record("shipments", shipment("ship-h20-0501", "2025-05-01"))
    assert seen(ledger.posture("alibaba", "2025-04-30")) == Seen("compliant", [])
    may = ledger.posture("alibaba", "2025-05-01")
    assert seen(may) == Seen("violation", [
        ("ship-h20-0501", H20_REG, "violation", "2025-05-01", None)])
    violation = finding(may, "ship-h20-0501")
    assert violation["subject_type"] == "shipment"
    assert violation["citation"] == H20_CITATION
    assert "needs a US-BIS licence" in violation["explanation"]

    # BIS starts issuing H20 licences on 2025-08-08; a shipment on 2025-09-01 under one is
    # compliant (the May violation remains, so the firm's posture is still a violation).
    ledger.record("licences", LICENCE)
    ledger.record("shipments", shipment("ship-h20-0901", "2025-09-01",
                                        licence_id=LICENCE["id"]))
    september = ledger.posture("alibaba", "2025-09-01")
    assert seen(september) == Seen("violation", [
        ("ship-h20-0501", H20_REG, "violation", "2025-05-01", None),
        ("ship-h20-0901", H20_REG, "compliant", "2025-09-01", None)])
    licensed = finding(september, "ship-h20-0901")
    assert f"covered by US-BIS licence {LICENCE['id']}" in licensed["explanation"]

    # The licence does not reach back: the May shipment is judged on its own day.
    assert finding(september, "ship-h20-0501")["status"] == "violation"
    # The timeline: compliant until the May shipment, a violation ever since.
    assert ledger.timeline("alibaba", "2025-01-01", "2025-12-31") == [
        ("2025-01-01", "2025-05-01", "compliant"), ("2025-05-01", "2025-12-31", "violation")]


# S1: a Malaysian lease for a CN-headquartered group; the rescinded Diffusion rule ------------


def test_s1_lease_red_flag_until_due_diligence_and_diffusion_never_binds(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    ledger = ledger_for(client, writer, as_role)
    # H100s in a Malaysian-owned DC in Johor; the lessee is Alibaba's Singapore subsidiary.
    ledger.record_all(("chip-models", H100), ("firms", ALIBABA), ("firms", ALIBABA_SG),
                      ("data-centres", DC_JOHOR), ("leases", LEASE))
    # With no regulation recorded, the lease draws no finding.
    assert seen(ledger.posture("alibaba-sg", "2025-06-01")) == Seen("compliant", [])

    # The Diffusion rule as enacted: a licence for every lease from its compliance date.
    diffusion = ledger.record("regulations", DIFFUSION)
    enacted = ledger.posture("alibaba-sg", "2025-06-01")
    assert seen(enacted) == Seen("violation", [
        ("lease-ali-johor", DIFFUSION["id"], "violation", "2025-05-15", "2025-10-01")])
    assert "(parent alibaba), headquartered in CN" in finding(enacted, "lease-ali-johor")[
        "explanation"]
    # It is rescinded from 2025-05-13, two days before compliance was due: never in force.
    rescinded = ledger.record(f"regulations/{DIFFUSION['id']}/rescission",
                              {"effective_from": "2025-05-13", "announced_on": "2025-05-13",
                               "reason": "BIS announces rescission and non-enforcement"})
    for day in ("2025-01-13", "2025-05-13", "2025-05-15", "2025-06-01", "2025-09-30"):
        assert seen(ledger.posture("alibaba-sg", day)) == Seen("compliant", []), day
    # As known before the rescission was recorded, the violation still shows (bitemporal).
    before = ledger.posture("alibaba-sg", "2025-06-01", known_at=diffusion["recorded_at"])
    assert before["position"] == diffusion["position"] < rescinded["position"]
    assert seen(before).status == "violation"

    # The 2025-05-13 guidance: a red flag (attention) for the subsidiary, because the
    # parent's HQ (CN) counts, from the guidance's date while the lease runs.
    ledger.record("regulations", RED_FLAG)
    assert seen(ledger.posture("alibaba-sg", "2025-05-12")) == Seen("compliant", [])
    flagged = ledger.posture("alibaba-sg", "2025-05-13")
    assert seen(flagged) == Seen("attention", [
        ("lease-ali-johor", RED_FLAG["id"], "attention", "2025-05-13", "2025-10-01")])
    assert finding(flagged, "lease-ali-johor")["citation"] == RED_FLAG["citation"]
    # The parent answers only for its own subjects: it has none.
    assert seen(ledger.posture("alibaba", "2025-05-13")) == Seen("compliant", [])

    # Due diligence completed on 2025-06-20 answers the red flag from that day on.
    ledger.record("leases/lease-ali-johor/due-diligence",
                  {"completed_on": "2025-06-20", "reference": "DD-2025-017"})
    assert seen(ledger.posture("alibaba-sg", "2025-06-19")) == Seen("attention", [
        ("lease-ali-johor", RED_FLAG["id"], "attention", "2025-05-13", "2025-06-20")])
    answered = ledger.posture("alibaba-sg", "2025-06-20")
    assert seen(answered) == Seen("compliant", [
        ("lease-ali-johor", RED_FLAG["id"], "compliant", "2025-06-20", "2025-10-01")])
    assert "due diligence completed on 2025-06-20" in finding(answered, "lease-ali-johor")[
        "explanation"]
    # After the lease ends (2025-09-30 inclusive) nothing holds.
    assert seen(ledger.posture("alibaba-sg", "2025-10-01")) == Seen("compliant", [])
    # Over the year: attention only between the guidance and the due diligence; the Diffusion
    # rule never shows.
    assert ledger.timeline("alibaba-sg", "2025-01-01", "2026-01-01") == [
        ("2025-01-01", "2025-05-13", "compliant"), ("2025-05-13", "2025-06-20", "attention"),
        ("2025-06-20", "2026-01-01", "compliant")]


# S3: a Chinese bank's fine-tuning in Singapore, then moved home ------------------------------


def test_s3_data_localisation_violation_until_processing_moves_to_china(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    ledger = ledger_for(client, writer, as_role)
    # A Chinese bank, a DC in Singapore and one in Shanghai, and PIPL as a data_localisation
    # rule that accepts only a CAC security assessment.
    ledger.record_all(("firms", CN_BANK), ("data-centres", DC_SINGAPORE),
                      ("data-centres", DC_SHANGHAI), ("regulations", PIPL))
    # Fine-tuning on 50,000 PRC customers' transaction records in Singapore from 2025-06-01,
    # with no transfer mechanism: a violation while it runs there.
    ledger.record("processing-activities", FINE_TUNING)
    assert seen(ledger.residency("cn-bank", "2025-05-31")) == Seen("compliant", [])
    june = ledger.residency("cn-bank", "2025-06-15")
    assert seen(june) == Seen("violation", [
        ("ft-bank-txn", PIPL["id"], "violation", "2025-06-01", None)])
    assert june["processing"] == [{"data_subject_country": "CN", "processed_in": "SG",
                                   "activity_id": "ft-bank-txn", "status": "violation"}]
    assert "no transfer mechanism is recorded" in finding(june, "ft-bank-txn")["explanation"]
    # The same finding is the firm's posture.
    assert seen(ledger.posture("cn-bank", "2025-06-15")) == seen(june)

    # From 2025-08-01 the work runs in the Shanghai DC: the data stays home, compliant.
    ledger.record("processing-activities/ft-bank-txn/changes",
                  {"effective_from": "2025-08-01", "data_centre_id": "sh-dc1"})
    july = ledger.residency("cn-bank", "2025-07-31")
    assert seen(july) == Seen("violation", [
        ("ft-bank-txn", PIPL["id"], "violation", "2025-06-01", "2025-08-01")])
    assert [p["processed_in"] for p in july["processing"]] == ["SG"]
    august = ledger.residency("cn-bank", "2025-08-01")
    assert seen(august) == Seen("compliant", [])
    assert august["processing"] == [{"data_subject_country": "CN", "processed_in": "CN",
                                     "activity_id": "ft-bank-txn", "status": "compliant"}]
    assert seen(ledger.posture("cn-bank", "2025-08-01")) == Seen("compliant", [])
    assert ledger.timeline("cn-bank", "2025-05-01", "2025-10-01") == [
        ("2025-05-01", "2025-06-01", "compliant"), ("2025-06-01", "2025-08-01", "violation"),
        ("2025-08-01", "2025-10-01", "compliant")]


# A restatement: the ship date was wrong ---------------------------------------------------


def test_a_corrected_ship_date_restates_the_past_as_known_later(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    ledger = ledger_for(client, writer, as_role)
    ledger.record_all(("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE))
    # First recorded as shipped on 2025-03-01, before the requirement: compliant.
    first = ledger.record("shipments", shipment("ship-h20-x", "2025-03-01"))
    assert seen(ledger.posture("alibaba", "2025-06-01")) == Seen("compliant", [])
    # Later the exporter's papers show it left on 2025-05-01: a correction, a new event.
    correction = ledger.record("shipments/ship-h20-x/corrections",
                               {"shipped_on": "2025-05-01", "reason": "bill of lading date"})
    assert correction["recorded_at"] > first["recorded_at"]

    # As known before the correction: compliant, and the answer names that moment.
    then = ledger.posture("alibaba", "2025-06-01", known_at=first["recorded_at"])
    assert seen(then) == Seen("compliant", [])
    assert then["position"] == first["position"]
    # As known at the correction (and now): a violation from 2025-05-01.
    for known_at in (correction["recorded_at"], later(correction["recorded_at"], seconds=1)):
        now = ledger.posture("alibaba", "2025-06-01", known_at=known_at)
        assert seen(now) == Seen("violation", [
            ("ship-h20-x", H20_REG, "violation", "2025-05-01", None)])
        assert now["position"] == correction["position"]

    # The restatements list the correction with what it changed for past dates: from the
    # corrected ship date up to the day the correction was recorded.
    recorded_on = correction["recorded_at"][:10]
    listed = ledger.get("firms/alibaba/restatements")
    assert (listed["firm_id"], listed["known_from"], listed["position"]) == (
        "alibaba", None, correction["position"])
    assert [(r["position"], r["recorded_at"], r["changes"]) for r in listed["restatements"]] \
        == [(correction["position"], correction["recorded_at"],
             [{"valid_from": "2025-05-01", "valid_to": recorded_on, "before": "compliant",
               "after": "violation"}])]
    [event] = listed["restatements"][0]["events"]
    assert (event["position"], event["record_id"], event["type"]) == (
        correction["position"], "ship-h20-x", "ShipmentCorrected")
    # From a known_from before the correction it is listed; from one after it, nothing is.
    since_first = ledger.get("firms/alibaba/restatements", known_from=first["recorded_at"])
    assert [r["position"] for r in since_first["restatements"]] == [correction["position"]]
    after = later(correction["recorded_at"], microseconds=1)
    since_after = ledger.get("firms/alibaba/restatements", known_from=after)
    assert since_after["known_from"] == after
    assert since_after["restatements"] == []
    # Nor does a window that closes before the correction see it.
    until_first = ledger.get("firms/alibaba/restatements", known_to=first["recorded_at"])
    assert until_first["restatements"] == []


# All firms: listing, filtering, timelines, errors ------------------------------------------


def _record_the_region(ledger: Ledger) -> None:
    """Alibaba (violation: an unlicensed H20 shipment), its Singapore arm (attention: the red
    flag), a Chinese bank (residency violation) and DeepSeek (nothing abroad: compliant)."""
    ledger.record_all(
        ("chip-models", H100), ("chip-models", H20), ("firms", ALIBABA), ("firms", ALIBABA_SG),
        ("firms", CN_BANK), ("firms", {"id": "deepseek", "name": "DeepSeek",
                                       "hq_country": "CN"}),
        ("data-centres", DC_JOHOR), ("data-centres", DC_SINGAPORE),
        ("regulations", H20_RULE), ("regulations", RED_FLAG), ("regulations", PIPL),
        ("shipments", shipment("ship-h20-0501", "2025-05-01")), ("leases", LEASE),
        ("processing-activities", FINE_TUNING))


def test_firms_list_posture_filter_timeline_and_refusals(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    ledger = ledger_for(client, writer, as_role)
    _record_the_region(ledger)
    # Every firm with its status and residency status on 2025-06-15, two to a page, in id
    # order; each page echoes the moment it reflects.
    rows, cursor, pages = [], None, 0
    while True:
        page = ledger.get("firms", as_of="2025-06-15", limit=2, cursor=cursor)
        assert (page["as_of"], page["position"]) == ("2025-06-15", ledger.position)
        assert len(page["firms"]) <= 2
        rows += page["firms"]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert pages == 2
    assert rows == [
        {"id": "alibaba", "name": "Alibaba Group", "hq_country": "CN", "status": "violation",
         "residency_status": "compliant"},
        {"id": "alibaba-sg", "name": "Alibaba Cloud (Singapore)", "hq_country": "SG",
         "status": "attention", "residency_status": "compliant"},
        {"id": "cn-bank", "name": "A Chinese bank", "hq_country": "CN", "status": "violation",
         "residency_status": "violation"},
        {"id": "deepseek", "name": "DeepSeek", "hq_country": "CN", "status": "compliant",
         "residency_status": "compliant"}]
    # Before anything bit (2025-04-01) every firm is compliant.
    early = ledger.get("firms", as_of="2025-04-01")
    assert {f["id"]: (f["status"], f["residency_status"]) for f in early["firms"]} == dict.fromkeys(
        ("alibaba", "alibaba-sg", "cn-bank", "deepseek"), ("compliant", "compliant"))
    assert early["next_cursor"] is None

    # The posture of all firms, filtered to violations: Alibaba and the bank only.
    violations = ledger.get("posture", as_of="2025-06-15", status="violation")
    assert (violations["as_of"], violations["status"], violations["position"]) == (
        "2025-06-15", "violation", ledger.position)
    assert [(f["firm_id"], f["status"], [x["regulation_id"] for x in f["findings"]])
            for f in violations["firms"]] == [("alibaba", "violation", [H20_REG]),
                                              ("cn-bank", "violation", [PIPL["id"]])]
    attention = ledger.get("posture", as_of="2025-06-15", status="attention")
    assert [f["firm_id"] for f in attention["firms"]] == ["alibaba-sg"]
    # Unfiltered: every firm, each with its own worst status; DeepSeek, with no finding, is
    # compliant (domain.md: no finding means compliant), so the compliant filter finds it.
    everyone = ledger.get("posture", as_of="2025-06-15")
    assert [(f["firm_id"], f["status"]) for f in everyone["firms"]] == [
        ("alibaba", "violation"), ("alibaba-sg", "attention"), ("cn-bank", "violation"),
        ("deepseek", "compliant")]
    compliant = ledger.get("posture", as_of="2025-06-15", status="compliant")
    assert [(f["firm_id"], f["findings"]) for f in compliant["firms"]] == [("deepseek", [])]

    # Timelines: consecutive intervals over [from, to) for each firm.
    assert ledger.timeline("alibaba-sg", "2025-03-01", "2025-12-01") == [
        ("2025-03-01", "2025-05-13", "compliant"), ("2025-05-13", "2025-10-01", "attention"),
        ("2025-10-01", "2025-12-01", "compliant")]
    assert ledger.timeline("deepseek", "2025-03-01", "2025-12-01") == [
        ("2025-03-01", "2025-12-01", "compliant")]
    # A window inside one interval is that interval alone, cut to the window.
    assert ledger.timeline("cn-bank", "2025-07-01", "2025-07-02") == [
        ("2025-07-01", "2025-07-02", "violation")]

    # Answers echo the moment: a known_at given is echoed, with the position it reflects.
    known_at = ledger.posture("alibaba", "2025-06-15")["known_at"]
    echoed = ledger.posture("alibaba", "2025-06-15", known_at=known_at)
    assert (echoed["known_at"], echoed["position"]) == (known_at, ledger.position)
    timeline = ledger.get("firms/alibaba/timeline", known_at=known_at, **{"from": "2025-01-01",
                                                                           "to": "2025-02-01"})
    assert (timeline["known_at"], timeline["position"]) == (known_at, ledger.position)

    # An unknown firm is a 404 problem on every per-firm read.
    for suffix in ("posture", "residency", "timeline", "restatements"):
        problem = ledger.get(f"firms/no-such-firm/{suffix}", expect=404)
        assert problem["status"] == 404
    # A min_position far beyond the head can never be reached: a 422 at once, naming the
    # parameter and the head's position (test_read_your_writes has the waits and the 503).
    response = client.get("/v1/firms/alibaba/posture",
                          params={"as_of": "2025-06-15", "min_position": 10**9},
                          headers=ledger.reader)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"at position {ledger.position}" in response.json()["detail"]


# The command line ----------------------------------------------------------------------------


def test_cli_posture_prints_the_table_of_the_api(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers],
        database_url: str) -> None:
    ledger = ledger_for(client, writer, as_role)
    ledger.record_all(("chip-models", H20), ("firms", ALIBABA))
    rule = ledger.record("regulations", H20_RULE)
    ledger.record("shipments", shipment("ship-h20-0501", "2025-05-01"))
    # The API's answer, once the projection has caught up (so the CLI has nothing to project).
    assert seen(ledger.posture("alibaba", "2025-06-01")).status == "violation"

    def chipledger(*args: str) -> str:
        env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url, "COLUMNS": "240",
               "CHIPLEDGER_LOG_FORMAT": "console", "CHIPLEDGER_LOG_LEVEL": "warning"}
        done = subprocess.run([str(CHIPLEDGER), *args], env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    # `chipledger posture alibaba --as-of 2025-06-01`: the status in the title, with the
    # position it reflects, and a row per finding with its regulation and dates.
    table = chipledger("posture", "alibaba", "--as-of", "2025-06-01")
    # (rich wraps the title to the table's width: compare it with whitespace collapsed)
    assert "alibaba: VIOLATION on 2025-06-01 (as known at " in " ".join(table.split())
    assert f"position {ledger.position})" in " ".join(table.split())
    [row] = [line for line in table.splitlines() if "ship-h20-0501" in line]
    for cell in ("violation", "shipment ship-h20-0501", H20_REG, "2025-05-01", "open"):
        assert cell in row, table
    # `--known-at` before the shipment was recorded: the same day reads compliant, no rows.
    then = chipledger("posture", "alibaba", "--as-of", "2025-06-01",
                      "--known-at", rule["recorded_at"])
    assert (f"alibaba: COMPLIANT on 2025-06-01 (as known at {rule['recorded_at']}, "
            f"position {rule['position']})") in " ".join(then.split())
    assert "ship-h20-0501" not in then
