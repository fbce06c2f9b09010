"""GET /v1/{kind}: every kind as a list on as_of as known at known_at, in id order, a page at
a time with one opaque cursor convention, and the filters of each kind; through the real
HTTP API on SQLite and PostgreSQL."""

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.data import ALIBABA, LICENCE, WORLD, record_world

Headers = dict[str, str]


def listed(client: TestClient, headers: Headers, path: str, expect: int = 200,
           **params: Any) -> dict[str, Any]:
    response = client.get(f"/v1/{path}", params=params, headers=headers)
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    return body


def every_page(client: TestClient, headers: Headers, path: str, **params: Any
               ) -> tuple[list[str], int]:
    """The ids of every page of a list, followed by next_cursor, and how many pages."""
    ids, cursor, pages = [], None, 0
    while True:
        page = listed(client, headers, path, **params, **({"cursor": cursor} if cursor else {}))
        ids += [r["id"] for r in page["records"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            return ids, pages


def test_every_kind_lists_its_records_with_their_state_and_version(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    record_world(client, writer)
    reader = as_role("reader")
    for collection, body in WORLD:
        if collection == "firms":
            continue  # the firm list answers posture: tests/api/test_posture_api.py
        page = listed(client, reader, collection, as_of="2025-06-15")
        (row,) = [r for r in page["records"] if r["id"] == body["id"]]
        one = listed(client, reader, f"{collection}/{body['id']}", as_of="2025-06-15",
                     known_at=page["known_at"])
        assert row == one  # the same answer as the record's own read, at the same moment
        assert page["as_of"] == "2025-06-15"
        assert page["position"] == one["position"]


def test_pages_follow_next_cursor_in_id_order_and_known_at_goes_back(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    record_world(client, writer)
    reader = as_role("reader")
    before = listed(client, reader, "shipments")["known_at"]
    for n in range(5):
        body = {**dict(WORLD)["shipments"], "id": f"ship-{n}"}
        assert client.post("/v1/shipments", json=body, headers=writer).status_code == 201
    ids, pages = every_page(client, reader, "shipments", limit=2)
    assert ids == sorted(["ship-0", "ship-1", "ship-2", "ship-3", "ship-4", "ship-h20-0501"])
    assert pages == 3
    # As known before the five were recorded, only the first shipment was.
    assert every_page(client, reader, "shipments", known_at=before)[0] == ["ship-h20-0501"]


def test_filters_by_firm_lifecycle_in_force_and_expiry(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    record_world(client, writer)
    client.post("/v1/licences", headers=writer, json={
        **LICENCE, "id": "lic-short", "valid_from": "2025-01-01", "valid_to": "2025-03-31"})
    reader = as_role("reader")
    ids = every_page
    assert ids(client, reader, "leases", firm_id="alibaba-sg")[0] == ["lease-ali-johor"]
    assert ids(client, reader, "leases", firm_id=ALIBABA["id"])[0] == []
    assert ids(client, reader, "shipments", firm_id="alibaba")[0] == ["ship-h20-0501"]
    assert ids(client, reader, "licences", firm_id="alibaba")[0] == ["bis-lic-h20-ali",
                                                                     "lic-short"]
    # The lease runs 2025-04-01..2025-09-30: pending before, active inside, ended after.
    assert ids(client, reader, "leases", status="pending", as_of="2025-03-01")[0] == [
        "lease-ali-johor"]
    assert ids(client, reader, "leases", status="active", as_of="2025-03-01")[0] == []
    assert ids(client, reader, "leases", status="ended", as_of="2025-10-01")[0] == [
        "lease-ali-johor"]
    # The H20 rule is in force from 2025-04-09 on.
    assert ids(client, reader, "regulations", in_force="true", as_of="2025-04-08")[0] == []
    assert ids(client, reader, "regulations", in_force="true", as_of="2025-04-09")[0] == [
        "us-bis-h20-2025"]
    assert ids(client, reader, "regulations", in_force="false", as_of="2025-04-08")[0] == [
        "us-bis-h20-2025"]
    # Only the licence with a valid_to before the date: an open-ended one never expires.
    assert ids(client, reader, "licences", expiring_before="2025-04-01")[0] == ["lic-short"]
    assert ids(client, reader, "licences", expiring_before="2025-03-31")[0] == []


def test_a_cursor_not_given_by_the_list_is_a_422_naming_cursor(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    record_world(client, writer)
    reader = as_role("reader")
    firms = listed(client, reader, "firms", limit=1)
    events = listed(client, reader, "events", limit=1)
    # garbage, not base64 JSON, another list's cursor, a cursor of the wrong shape
    for path, cursor in (("leases", "garbage"), ("leases", "!!!"), ("firms", "e30"),
                         ("leases", firms["next_cursor"]), ("events", firms["next_cursor"]),
                         ("firms", events["next_cursor"]), ("chip-models", "bnVsbA")):
        response = client.get(f"/v1/{path}", params={"cursor": cursor}, headers=reader)
        assert response.status_code == 422, (path, cursor, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in response.json()["errors"]] == ["query.cursor"]
    # A lifecycle that is not one is a 422 naming status.
    bad = client.get("/v1/leases", params={"status": "gone"}, headers=reader)
    assert bad.status_code == 422
    assert "status" in bad.json()["errors"][0]["field"]


def test_the_events_feed_pages_by_next_cursor_and_still_by_next_after(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    record_world(client, writer)
    reader = as_role("reader")
    first = listed(client, reader, "events", limit=4)
    by_after = listed(client, reader, "events", limit=4, after=first["next_after"])
    by_cursor = listed(client, reader, "events", limit=4, cursor=first["next_cursor"])
    assert by_after == by_cursor
    assert by_cursor["events"][0]["position"] == first["events"][-1]["position"] + 1
    rest = listed(client, reader, "events", limit=1000, cursor=first["next_cursor"])
    assert (rest["next_after"], rest["next_cursor"]) == (None, None)
