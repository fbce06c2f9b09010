"""HTTP semantics of appends and reads (RFC 9110): Location on a create, ETag on a record read,
If-Match with `*` and weak tags, and Idempotency-Key fingerprints over the parsed content; on
SQLite and PostgreSQL through the real app."""

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from infra.bootstrap import Container
from tests.support.data import ALIBABA, LEASE, record_world

Headers = dict[str, str]


def test_a_create_says_where_the_record_is_and_its_read_tags_its_version(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    created = client.post("/v1/firms", json=ALIBABA, headers=writer)
    assert created.status_code == 201
    assert created.headers["location"] == "/v1/firms/alibaba"
    read = client.get(created.headers["location"], headers=as_role("reader"))
    assert read.status_code == 200
    assert read.headers["etag"] == '"1"' == f'"{read.json()["version"]}"'
    # A create that changes nothing (the same body again) is a 200, with no Location.
    again = client.post("/v1/firms", json=ALIBABA, headers=writer)
    assert again.status_code == 200
    assert "location" not in again.headers


def test_if_match_star_matches_any_record_and_a_weak_tag_never_matches(
        client: TestClient, writer: Headers, as_role: Callable[[str], Headers]) -> None:
    record_world(client, writer)
    url = f"/v1/leases/{LEASE['id']}/amendments"
    tag = client.get(f"/v1/leases/{LEASE['id']}", headers=as_role("reader")).headers["etag"]
    weak = client.post(url, json={"effective_from": "2025-05-01", "chip_count": 1024},
                       headers={**writer, "If-Match": f"W/{tag}"})
    assert weak.status_code == 412, weak.text
    assert weak.headers["content-type"].startswith("application/problem+json")
    strong = client.post(url, json={"effective_from": "2025-05-01", "chip_count": 1024},
                         headers={**writer, "If-Match": tag})
    assert strong.status_code == 200, strong.text
    star = client.post(url, json={"effective_from": "2025-06-01", "chip_count": 512},
                       headers={**writer, "If-Match": "*"})
    assert star.status_code == 200, star.text
    assert star.json()["version"] == strong.json()["version"] + 1
    stale = client.post(url, json={"effective_from": "2025-07-01", "chip_count": 256},
                        headers={**writer, "If-Match": tag})
    assert stale.status_code == 412
    missing = client.post("/v1/leases/no-such-lease/amendments", headers={
        **writer, "If-Match": "*"}, json={"effective_from": "2025-07-01", "chip_count": 1})
    assert missing.status_code == 404


def test_an_idempotency_key_compares_the_content_not_the_bytes(
        client: TestClient, writer: Headers) -> None:
    compact = json.dumps(ALIBABA, separators=(",", ":"))
    spaced = json.dumps(dict(reversed(list(ALIBABA.items()))), indent=2)
    headers = {**writer, "Idempotency-Key": "firm-1", "Content-Type": "application/json"}
    first = client.post("/v1/firms", content=compact, headers=headers)
    again = client.post("/v1/firms", content=spaced, headers=headers)
    assert first.status_code == 201
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    other = client.post("/v1/firms", content=json.dumps({**ALIBABA, "name": "Other"}),
                        headers=headers)
    assert other.status_code == 422


def test_an_idempotency_key_is_kept_for_its_time_then_is_a_new_request(
        client: TestClient, writer: Headers, container: Container) -> None:
    headers = {**writer, "Idempotency-Key": "firm-2"}
    first = client.post("/v1/firms", json=ALIBABA, headers=headers)
    assert first.status_code == 201
    assert container.settings.idempotency_ttl == 24 * 3600  # the documented default
    # Inside the time, another body under the key is refused ...
    other = {**ALIBABA, "id": "alibaba-2"}
    assert client.post("/v1/firms", json=other, headers=headers).status_code == 422
    # ... and once the answer is older than that, the key names a new request.
    dialect = container.store.dialect
    with dialect.transaction(commit=True) as cursor:
        cursor.execute(dialect.sql(f"UPDATE {dialect.idempotency_table} SET created_at = %s"),
                       (dialect.to_db_time(datetime.now(UTC) - timedelta(hours=25)),))
    later = client.post("/v1/firms", json=other, headers=headers)
    assert later.status_code == 201, later.text
    assert later.json()["id"] == "alibaba-2"
    replay = client.post("/v1/firms", json=other, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
