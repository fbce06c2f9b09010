"""A firm's posture a page of findings at a time, with its counts by status: paged by the
database (limit and cursor in the query), through the real HTTP API on SQLite and PostgreSQL."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.data import ALIBABA, H20, H20_RULE, SHIPMENT

Headers = dict[str, str]
# Ids whose byte order differs from a locale's (which skips the hyphen): the pages must follow
# the byte order that Python and SQLite use.
SHIPMENTS = ("ship-1", "ship0", "ship-b", "shipa", "ship-c")


def record_violations(client: TestClient, writer: Headers) -> int:
    for path, body in (("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE),
                       *(("shipments", {**SHIPMENT, "id": i}) for i in SHIPMENTS)):
        response = client.post(f"/v1/{path}", json=body, headers=writer)
        assert response.status_code == 201, response.text
    position: int = response.json()["position"]
    return position


def posture(client: TestClient, reader: Headers, position: int, **params: Any
            ) -> dict[str, Any]:
    response = client.get("/v1/firms/alibaba/posture", headers=reader, params={
        "as_of": "2025-06-15", "min_position": position, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_firms_findings_page_in_key_order_with_their_counts(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    position = record_violations(client, writer)
    reader = as_role("reader")
    whole = posture(client, reader, position, limit=1000)
    assert whole["next_cursor"] is None
    assert [f["subject_id"] for f in whole["findings"]] == sorted(SHIPMENTS)
    seen, cursor, pages = [], None, 0
    while True:
        page = posture(client, reader, position, limit=2, **({"cursor": cursor} if cursor else {}))
        # Every page says the whole answer: the worst status and how many findings of each.
        assert page["status"] == "violation"
        assert page["counts"] == {"compliant": 0, "attention": 0, "violation": 5}
        assert page["position"] == whole["position"]
        seen += page["findings"]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert (pages, seen) == (3, whole["findings"])
    # Before the rule, no finding: compliant, every count zero.
    early = posture(client, reader, position, as_of="2025-04-01")
    assert (early["status"], early["findings"], early["next_cursor"]) == ("compliant", [], None)
    assert early["counts"] == {"compliant": 0, "attention": 0, "violation": 0}


def test_a_posture_cursor_is_the_firms_own(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    position = record_violations(client, writer)
    client.post("/v1/firms", json={"id": "other", "name": "Other", "hq_country": "CN"},
                headers=writer)
    reader = as_role("reader")
    cursor = posture(client, reader, position, limit=1)["next_cursor"]
    firms_cursor = client.get("/v1/firms", params={"limit": 1}, headers=reader).json()
    for path, bad in (("alibaba", "garbage"), ("other", cursor),
                      ("alibaba", firms_cursor["next_cursor"])):
        response = client.get(f"/v1/firms/{path}/posture", params={"cursor": bad},
                              headers=reader)
        assert response.status_code == 422, response.text
        assert [e["field"] for e in response.json()["errors"]] == ["query.cursor"]


def test_every_firms_posture_pages_by_firm_with_counts_of_firms_by_status(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    position = record_violations(client, writer)
    for n in range(3):
        response = client.post("/v1/firms", headers=writer, json={
            "id": f"quiet-{n}", "name": f"Quiet {n}", "hq_country": "SG"})
        position = response.json()["position"]
    reader = as_role("reader")

    def page(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/posture", headers=reader, params={
            "as_of": "2025-06-15", "min_position": position, **params})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    first = page(limit=2)
    assert [f["firm_id"] for f in first["firms"]] == ["alibaba", "quiet-0"]
    assert [len(f["findings"]) for f in first["firms"]] == [5, 0]
    assert first["counts"] == {"compliant": 3, "attention": 0, "violation": 1}
    rest = page(limit=2, cursor=first["next_cursor"])
    assert ([f["firm_id"] for f in rest["firms"]], rest["next_cursor"]) == (
        ["quiet-1", "quiet-2"], None)
    assert rest["counts"] == first["counts"]
    # The status filter pages too, and counts every firm whatever the filter.
    violations = page(status="violation", limit=1)
    assert ([f["firm_id"] for f in violations["firms"]], violations["next_cursor"]) == (
        ["alibaba"], None)
    assert violations["counts"] == first["counts"]
    bad = client.get("/v1/posture", params={"cursor": "garbage"}, headers=reader)
    assert bad.status_code == 422
    assert [e["field"] for e in bad.json()["errors"]] == ["query.cursor"]
