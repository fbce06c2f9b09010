"""Round two of domain.md through the real HTTP API, on SQLite and on PostgreSQL:
suspensions and reinstatements, licence draw-down, ownership, restricted parties.

Each refusal is a 422 naming the field, and writes nothing (the log's head does not move).
"""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.api.test_posture_api import Ledger, ledger_for, shipment
from tests.support.data import ALIBABA, H20, H20_RULE

Headers = dict[str, str]
H20_REG = H20_RULE["id"]
# Huawei's listing is public (domain-facts.md); Orchid Cloud, its 60% subsidiary, is invented.
PARENT: dict[str, Any] = {"id": "huawei", "name": "Huawei Technologies", "hq_country": "CN"}
SUBSIDIARY: dict[str, Any] = {"id": "orchid-cloud", "name": "Orchid Cloud (fictional)",
                              "hq_country": "SG",
                              "owners": [{"firm_id": "huawei", "share": 0.6}]}


def _head(client: TestClient, reader: Headers) -> int:
    response = client.get("/v1/integrity", headers=reader)
    assert response.status_code == 200, response.text
    head: int = response.json()["head_position"]
    return head


def refused(book: Ledger, path: str, body: dict[str, Any], field: str) -> dict[str, Any]:
    """A 422 naming `field`, after which the log is as it was."""
    before = _head(book.client, book.reader)
    response = book.client.post(f"/v1/{path}", json=body, headers=book.writer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert any(field in e["loc"] for e in problem["errors"]), problem
    assert _head(book.client, book.reader) == before
    return problem


def statuses(book: Ledger, firm: str, as_of: str) -> dict[str, str]:
    body = book.get(f"firms/{firm}/posture", as_of=as_of)
    return {f["subject_id"]: f["status"] for f in body["findings"]}


# suspensions -----------------------------------------------------------------------------------


def test_a_suspended_regulation_is_not_in_force_on_the_days_its_suspension_covers(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE))
    book.record(f"regulations/{H20_REG}/suspension",
                {"effective_from": "2025-11-10", "until": "2026-11-09", "reason": "trade deal"})
    book.record_all(("shipments", shipment("s-oct", "2025-10-01")),
                    ("shipments", shipment("s-dec", "2025-12-01")),
                    ("shipments", shipment("s-after", "2026-11-10")))
    # In force before and after the suspension; not during it.
    assert statuses(book, "alibaba", "2026-12-01") == {"s-oct": "violation",
                                                       "s-after": "violation"}
    # A reinstatement from 2026-01-01 ends the suspension that day: s-jan is judged again.
    book.record(f"regulations/{H20_REG}/reinstatement", {"effective_from": "2026-01-01"})
    book.record("shipments", shipment("s-jan", "2026-01-05"))
    assert statuses(book, "alibaba", "2026-02-01") == {"s-oct": "violation",
                                                       "s-jan": "violation"}
    # The regulation's history holds both events, typed as domain.md names them.
    history = book.get(f"regulations/{H20_REG}/history")
    types = [e["type"] for e in (history["events"] if isinstance(history, dict)
                                 and "events" in history else history)]
    assert types[-2:] == ["RegulationSuspended", "RegulationReinstated"]


def test_a_suspension_until_before_its_effective_from_is_refused_naming_until(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE))
    refused(book, f"regulations/{H20_REG}/suspension",
            {"effective_from": "2025-11-10", "until": "2025-11-09"}, "until")


def test_a_reinstatement_on_a_day_no_suspension_covers_is_refused_naming_effective_from(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE))
    refused(book, f"regulations/{H20_REG}/reinstatement", {"effective_from": "2025-11-10"},
            "effective_from")
    book.record(f"regulations/{H20_REG}/suspension",
                {"effective_from": "2025-11-10", "until": "2025-11-30"})
    refused(book, f"regulations/{H20_REG}/reinstatement", {"effective_from": "2025-12-01"},
            "effective_from")
    book.record(f"regulations/{H20_REG}/reinstatement", {"effective_from": "2025-11-20"})


# ownership ---------------------------------------------------------------------------------------


def test_ownership_is_recorded_changed_and_shown_on_record_reads(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("firms", PARENT), ("firms", {**SUBSIDIARY}))
    book.record("firms/orchid-cloud/changes", {"effective_from": "2025-12-01",
                                               "owners": [{"firm_id": "huawei", "share": 0.4}]})
    before = book.get("firms/orchid-cloud", as_of="2025-10-01")
    after = book.get("firms/orchid-cloud", as_of="2025-12-01")
    assert before["data"]["owners"] == [{"firm_id": "huawei", "share": 0.6}]
    assert after["data"]["owners"] == [{"firm_id": "huawei", "share": 0.4}]


def test_ownership_refusals_name_owners_and_write_nothing(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("firms", PARENT), ("firms", SUBSIDIARY))
    refused(book, "firms", {"id": "x", "name": "X", "hq_country": "SG",
                            "owners": [{"firm_id": "huawei", "share": 1.5}]}, "owners")
    refused(book, "firms", {"id": "x", "name": "X", "hq_country": "SG",
                            "owners": [{"firm_id": "huawei", "share": 0.6},
                                       {"firm_id": "orchid-cloud", "share": 0.6}]}, "owners")
    refused(book, "firms", {"id": "x", "name": "X", "hq_country": "SG",
                            "owners": [{"firm_id": "nobody", "share": 0.5}]}, "firm_id")
    # huawei owned by its own subsidiary, from a day on: a loop through huawei itself
    refused(book, "firms/huawei/changes", {"effective_from": "2026-01-01", "owners": [
        {"firm_id": "orchid-cloud", "share": 0.1}]}, "owners")
    refused(book, "firms/huawei/corrections", {"owners": [
        {"firm_id": "orchid-cloud", "share": 0.1}]}, "owners")


# licence quantities and restricted parties, through storage --------------------------------------


H100_BODY: dict[str, Any] = {"id": "nvidia-h100", "vendor": "NVIDIA", "origin_country": "US",
                             "tpp": 15830, "performance_density": 19.4}


def test_licence_quantity_runs_out_on_the_third_shipment_and_a_correction_restates(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE))
    book.record("licences", {"id": "lic-1000", "authority": "US-BIS", "holder_firm_id": "alibaba",
                             "chip_models": ["nvidia-h20"], "destination_countries": ["CN"],
                             "valid_from": "2025-05-01", "quantity": 1000})
    for n, day in enumerate(("2025-06-01", "2025-07-01", "2025-08-01"), 1):
        book.record("shipments", shipment(f"s{n}", day, quantity=400))
    body = book.get("firms/alibaba/posture", as_of="2025-09-01")
    found = {f["subject_id"]: f for f in body["findings"]}
    assert {s: f["status"] for s, f in found.items()} == {
        "s1": "compliant", "s2": "compliant", "s3": "violation"}
    assert "licence lic-1000 has 200 of 1,000 left; shipment s3 needs 400" in \
        found["s3"]["explanation"]
    # The first shipment was 100 chips, not 400: the third is covered, as known from now on.
    book.record("shipments/s1/corrections", {"quantity": 100, "reason": "customs record"})
    assert statuses(book, "alibaba", "2025-09-01")["s3"] == "compliant"


def test_restricted_party_affiliates_rule_suspended_through_storage(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("chip-models", H100_BODY), ("firms", PARENT), ("firms", SUBSIDIARY))
    rule = {"kind": "restricted_party", "parties": ["huawei"], "licence_authority": "US-BIS",
            "affiliates_min_share": 0.5}
    book.record("regulations", {"id": "affiliates", "authority": "US-BIS",
                                "title": "Affiliates Rule", "citation": "FR doc 2025-19001",
                                "effective_from": "2025-09-29", "rule": rule})
    book.record("regulations/affiliates/suspension",
                {"effective_from": "2025-11-10", "until": "2026-11-09"})
    for month in ("10", "12"):
        book.record("shipments", {"id": f"h100-{month}", "chip_model": "nvidia-h100",
                                  "quantity": 512, "from_country": "US", "to_country": "SG",
                                  "consignee_firm_id": "orchid-cloud",
                                  "shipped_on": f"2025-{month}-15"})
    body = book.get("firms/orchid-cloud/posture", as_of="2026-01-01")
    [only] = body["findings"]
    assert (only["subject_id"], only["status"]) == ("h100-10", "violation")
    assert "restricted as 60% owned by listed huawei" in only["explanation"]
    # Huawei sells down to 40% from 2025-10-01: the October shipment is restated, not restricted.
    book.record("firms/orchid-cloud/changes", {"effective_from": "2025-10-01", "owners": [
        {"firm_id": "huawei", "share": 0.4}]})
    assert book.get("firms/orchid-cloud/posture", as_of="2026-01-01")["findings"] == []


def test_restricted_party_listed_parties_must_be_known_firms(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    book = ledger_for(client, writer, as_role)
    book.record_all(("firms", PARENT))
    refused(book, "regulations", {"id": "el", "authority": "US-BIS", "title": "Entity List",
                                  "citation": "15 CFR 744", "effective_from": "2019-05-16",
                                  "rule": {"kind": "restricted_party",
                                           "parties": ["huawei", "nobody"],
                                           "licence_authority": "US-BIS"}}, "parties")
