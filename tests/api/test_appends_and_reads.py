"""The HTTP contract of appends and reads (api.md, Appends and Reads; domain.md, the two time
axes): every append endpoint answers `{id, version, position, recorded_at}` with gap-free
positions; records read as of a valid date and as known at a record time; histories, the
global feed and the integrity head agree; If-Match, Idempotency-Key and batches behave as
documented, and a refused request appends nothing.
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from api.appends import ACTIONS
from domain.kinds import KINDS
from infra.bootstrap import Container
from tests.support.data import (
    ACTIVITY,
    ALIBABA,
    ALIBABA_SG,
    DC_JOHOR,
    H20_RULE,
    H100,
    LEASE,
    LICENCE,
    SHIPMENT,
    WORLD,
    record_world,
)

NDJSON = "application/x-ndjson"
PROBLEM_JSON = "application/problem+json"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
HASH = re.compile(r"^[0-9a-f]{64}$")
WORLD_SIZE = len(WORLD)
LEASE_ID = LEASE["id"]
LEASE_URL = f"/v1/leases/{LEASE_ID}"
KINDS_BY_COLLECTION = {spec.collection: spec.kind for spec in KINDS.values()}

Headers = dict[str, str]


# Helpers ---------------------------------------------------------------------------------------


def answer_of(response: Response, status: int, *, kind: str, record_id: str, version: int,
              position: int) -> dict[str, Any]:
    """Check an append's answer: the status, the documented fields (and `kind`), the ETag."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body == {"kind": kind, "id": record_id, "version": version, "position": position,
                    "recorded_at": body["recorded_at"]}
    assert TIMESTAMP.match(body["recorded_at"]), body
    assert response.headers["etag"] == f'"{version}"'
    return body


def problem_of(response: Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    return body


def head(client: TestClient, headers: Headers) -> dict[str, Any]:
    response = client.get("/v1/integrity", headers=headers)
    assert response.status_code == 200, response.text
    integrity: dict[str, Any] = response.json()
    return integrity


def head_position(client: TestClient, headers: Headers) -> int:
    position: int = head(client, headers)["head_position"]
    return position


def later(client: TestClient, path: str, body: dict[str, Any], headers: Headers,
          **kwargs: Any) -> Response:
    """Append after the clock has moved on, so the new event's recorded_at is strictly later
    than every earlier one (SQLite's clock ticks in milliseconds)."""
    time.sleep(0.003)
    return client.post(path, json=body, headers=headers, **kwargs)


def read(client: TestClient, path: str, headers: Headers, **params: str) -> dict[str, Any]:
    response = client.get(path, params=params, headers=headers)
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()
    return record


def ndjson(*lines: dict[str, Any] | str) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                   for line in lines).encode()


def post_batch(client: TestClient, headers: Headers, *lines: dict[str, Any] | str,
               **extra: str) -> Response:
    return client.post("/v1/events:batch", content=ndjson(*lines),
                       headers={**headers, "Content-Type": NDJSON, **extra})


def includes(whole: Any, part: Any) -> bool:
    """`part` is `whole` with some dictionary keys left out, at any depth."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and includes(whole[k], v) for k, v in part.items())
    return bool(whole == part)


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    """The app without its background projection worker: these reads come from the log alone,
    and the worker would only compete with the appends for SQLite's one writer connection."""
    with TestClient(create_app(container=container, workers=False)) as test_client:
        yield test_client


@pytest.fixture
def reader(as_role: Callable[[str], Headers]) -> Headers:
    return as_role("reader")


@pytest.fixture
def world(client: TestClient, writer: Headers) -> TestClient:
    record_world(client, writer)
    return client


# 1. Appends --------------------------------------------------------------------------------------


AMENDED_RULE = {**H20_RULE["rule"], "to_countries": ["CN", "HK", "MO", "MY"]}

# Every later append of api.md, in an order the record rules accept, with the event it records.
LATER_APPENDS: list[tuple[str, str, str, dict[str, Any], str]] = [
    ("chip-models", H100["id"], "corrections",
     {"memory_bandwidth_gbps": 3352, "reason": "datasheet rev. B"}, "ChipModelCorrected"),
    ("firms", "alibaba", "changes",
     {"effective_from": "2025-07-01", "name": "Alibaba Group Holding"}, "FirmChanged"),
    ("firms", "alibaba", "corrections",
     {"name": "Alibaba Group Holding Ltd", "reason": "legal name"}, "FirmCorrected"),
    ("data-centres", DC_JOHOR["id"], "changes",
     {"effective_from": "2025-08-01", "operator": "Johor Compute"}, "DataCentreChanged"),
    ("data-centres", DC_JOHOR["id"], "corrections",
     {"operator_hq_country": "SG", "reason": "operator is Singaporean"}, "DataCentreCorrected"),
    ("regulations", H20_RULE["id"], "amendments",
     {"effective_from": "2025-07-15", "rule": AMENDED_RULE}, "RegulationAmended"),
    ("regulations", H20_RULE["id"], "suspension",
     {"effective_from": "2025-09-01", "until": "2025-09-30", "reason": "trade talks"},
     "RegulationSuspended"),
    ("regulations", H20_RULE["id"], "reinstatement",
     {"effective_from": "2025-09-15", "reason": "talks broke down"}, "RegulationReinstated"),
    ("regulations", H20_RULE["id"], "rescission",
     {"effective_from": "2025-12-01", "announced_on": "2025-11-20", "reason": "superseded"},
     "RegulationRescinded"),
    ("licences", LICENCE["id"], "revocation",
     {"effective_from": "2025-10-01", "reason": "end-use concerns"}, "LicenceRevoked"),
    ("leases", LEASE_ID, "amendments",
     {"effective_from": "2025-06-01", "chip_count": 4096}, "LeaseAmended"),
    ("leases", LEASE_ID, "due-diligence",
     {"completed_on": "2025-05-20", "reference": "DD-2025-017"}, "DueDiligenceRecorded"),
    ("leases", LEASE_ID, "corrections",
     {"chip_count": 1024, "reason": "typo in the contract summary"}, "LeaseCorrected"),
    ("leases", LEASE_ID, "termination",
     {"effective_from": "2025-09-01", "reason": "lessee withdrew"}, "LeaseTerminated"),
    ("shipments", SHIPMENT["id"], "corrections",
     {"quantity": 900, "reason": "packing list"}, "ShipmentCorrected"),
    ("processing-activities", ACTIVITY["id"], "changes",
     {"effective_from": "2025-07-01", "transfer_mechanism": "standard_contract"},
     "ProcessingChanged"),
    ("processing-activities", ACTIVITY["id"], "corrections",
     {"subject_count": 60000, "reason": "recount"}, "ProcessingCorrected"),
    ("processing-activities", ACTIVITY["id"], "end",
     {"effective_from": "2025-10-01"}, "ProcessingEnded"),
]


class TestAppends:
    def test_the_later_appends_here_cover_every_action_endpoint(self):
        assert {(c, s) for c, _, s, _, _ in LATER_APPENDS} == set(ACTIONS)
        assert len(LATER_APPENDS) == len(ACTIONS)
        assert {KINDS_BY_COLLECTION[c] for c, _ in WORLD} == set(KINDS)

    def test_a_create_of_every_kind_answers_201_at_the_next_position(self, client, writer):
        for position, (collection, body) in enumerate(WORLD, start=1):
            response = client.post(f"/v1/{collection}", json=body, headers=writer)
            answer_of(response, 201, kind=KINDS_BY_COLLECTION[collection],
                      record_id=body["id"], version=1, position=position)
            assert "idempotent-replayed" not in response.headers
        located = {**ACTIVITY, "id": "ft-home", "location_country": "CN"}
        del located["data_centre_id"]
        answer_of(client.post("/v1/processing-activities", json=located, headers=writer), 201,
                  kind="processing_activity", record_id="ft-home", version=1,
                  position=WORLD_SIZE + 1)
        assert head_position(client, writer) == WORLD_SIZE + 1
        events = client.get("/v1/events", headers=writer).json()["events"]
        assert [e["position"] for e in events] == list(range(1, WORLD_SIZE + 2))
        stamps = [e["recorded_at"] for e in events]
        assert stamps == sorted(stamps)  # recorded_at never decreases along positions
        data = read(client, "/v1/processing-activities/ft-home", writer)["data"]
        assert (data["location_country"], data["data_centre_id"]) == ("CN", None)

    def test_every_later_append_answers_200_at_the_next_position(self, world, writer, reader):
        versions = {(collection, body["id"]): 1 for collection, body in WORLD}
        position = WORLD_SIZE
        for collection, record_id, segment, body, _ in LATER_APPENDS:
            response = world.post(f"/v1/{collection}/{record_id}/{segment}", json=body,
                                  headers=writer)
            position += 1
            versions[(collection, record_id)] += 1
            answer_of(response, 200, kind=KINDS_BY_COLLECTION[collection],
                      record_id=record_id, version=versions[(collection, record_id)],
                      position=position)
        assert head_position(world, reader) == WORLD_SIZE + len(LATER_APPENDS)
        events = world.get("/v1/events", params={"after": WORLD_SIZE},
                           headers=reader).json()["events"]
        assert len(events) == len(LATER_APPENDS)
        for event, (_, record_id, _, body, event_type) in zip(events, LATER_APPENDS,
                                                              strict=True):
            assert (event["type"], event["record_id"]) == (event_type, record_id)
            assert includes(event["data"], body), (event["data"], body)

        chip = read(world, "/v1/chip-models/nvidia-h100", reader)
        assert (chip["data"]["memory_bandwidth_gbps"], chip["version"]) == (3352, 2)
        firm = read(world, "/v1/firms/alibaba", reader, as_of="2025-06-30")
        assert firm["data"]["name"] == "Alibaba Group Holding Ltd"  # corrected
        firm = read(world, "/v1/firms/alibaba", reader, as_of="2025-07-01")
        assert firm["data"]["name"] == "Alibaba Group Holding"  # changed from 2025-07-01
        dc = read(world, "/v1/data-centres/johor-dc1", reader, as_of="2025-08-01")
        assert (dc["data"]["operator"], dc["data"]["operator_hq_country"]) == (
            "Johor Compute", "SG")
        regulation = read(world, f"/v1/regulations/{H20_RULE['id']}", reader,
                          as_of="2025-12-01")
        assert (regulation["lifecycle"], regulation["ended_from"]) == ("ended", "2025-12-01")
        licence = read(world, f"/v1/licences/{LICENCE['id']}", reader, as_of="2025-10-01")
        assert (licence["lifecycle"], licence["ended_from"]) == ("ended", "2025-10-01")
        lease = read(world, LEASE_URL, reader, as_of="2025-08-31")
        assert lease["data"]["chip_count"] == 4096
        assert lease["due_diligence_from"] == "2025-05-20"
        assert (lease["ended_from"], lease["version"]) == ("2025-09-01", 5)
        shipment = read(world, f"/v1/shipments/{SHIPMENT['id']}", reader)
        assert shipment["data"]["quantity"] == 900
        activity = read(world, f"/v1/processing-activities/{ACTIVITY['id']}", reader,
                        as_of="2025-07-01")
        assert activity["data"]["transfer_mechanism"] == "standard_contract"
        assert activity["data"]["subject_count"] == 60000
        assert activity["ended_from"] == "2025-10-01"

    def test_only_a_writer_key_may_append_and_any_key_may_read(self, world, reader):
        problem_of(world.post("/v1/firms", json={**ALIBABA, "id": "f-reader"}, headers=reader),
                   403)
        problem_of(world.post("/v1/firms", json={**ALIBABA, "id": "f-anon"}), 401)
        problem_of(world.get("/v1/firms/alibaba"), 401)
        assert head_position(world, reader) == WORLD_SIZE
        assert read(world, "/v1/firms/alibaba", reader)["id"] == "alibaba"


# 2. Reads ----------------------------------------------------------------------------------------


class TestRecordReads:
    def test_a_read_echoes_its_times_position_and_version(self, world, reader):
        record = read(world, LEASE_URL, reader, as_of="2025-05-01",
                      known_at="2099-01-01T08:00:00.5+08:00")
        assert record == {
            "kind": "lease", "id": LEASE_ID, "as_of": "2025-05-01",
            "known_at": "2099-01-01T00:00:00.500000Z", "position": WORLD_SIZE, "version": 1,
            "lifecycle": "active", "data": {k: v for k, v in LEASE.items() if k != "id"},
            "ended_from": None, "recorded_at": record["recorded_at"],
            "due_diligence_from": None,
        }
        history = world.get(f"{LEASE_URL}/history", headers=reader).json()["events"]
        assert record["recorded_at"] == history[-1]["recorded_at"]
        default = read(world, "/v1/firms/alibaba", reader)
        assert default["position"] == WORLD_SIZE
        assert TIMESTAMP.match(default["known_at"])
        assert re.match(r"^\d{4}-\d{2}-\d{2}$", default["as_of"])

    def test_an_amendment_is_visible_as_of_its_effective_date_and_not_before(
            self, world, writer, reader):
        response = world.post(f"{LEASE_URL}/amendments", headers=writer, json={
            "effective_from": "2025-06-01", "chip_count": 4096, "purposes": ["inference"]})
        assert response.status_code == 200, response.text
        before = read(world, LEASE_URL, reader, as_of="2025-05-31")["data"]
        on = read(world, LEASE_URL, reader, as_of="2025-06-01")["data"]
        after = read(world, LEASE_URL, reader, as_of="2025-09-30")["data"]
        assert (before["chip_count"], before["purposes"]) == (2048, ["training"])
        assert (on["chip_count"], on["purposes"]) == (4096, ["inference"])
        assert (after["chip_count"], after["purposes"]) == (4096, ["inference"])
        response = world.post(f"{LEASE_URL}/amendments", headers=writer,
                              json={"effective_from": "2025-09-01", "ends_on": "2025-12-31"})
        assert response.status_code == 200, response.text
        extended = read(world, LEASE_URL, reader, as_of="2025-10-15")
        assert (extended["lifecycle"], extended["data"]["ends_on"]) == ("active", "2025-12-31")
        assert read(world, LEASE_URL, reader, as_of="2026-01-01")["lifecycle"] == "ended"
        assert read(world, LEASE_URL, reader, as_of="2025-08-31")["data"]["ends_on"] == (
            "2025-09-30")

        path = f"/v1/regulations/{H20_RULE['id']}"
        response = world.post(f"{path}/amendments", headers=writer,
                              json={"effective_from": "2025-07-15", "rule": AMENDED_RULE})
        assert response.status_code == 200, response.text
        before = read(world, path, reader, as_of="2025-07-14")["data"]
        after = read(world, path, reader, as_of="2025-07-15")["data"]
        assert before["rule"]["to_countries"] == ["CN", "HK", "MO"]
        assert after["rule"]["to_countries"] == ["CN", "HK", "MO", "MY"]
        assert after["effective_from"] == "2025-04-09"  # the regulation's, not the amendment's

    def test_amendments_apply_in_order_of_effective_date_not_of_recording(
            self, world, writer, reader):
        for effective_from, count in [("2025-08-01", 300), ("2025-06-01", 200)]:
            response = world.post(f"{LEASE_URL}/amendments", headers=writer,
                                  json={"effective_from": effective_from, "chip_count": count})
            assert response.status_code == 200, response.text
        counts = [read(world, LEASE_URL, reader, as_of=day)["data"]["chip_count"]
                  for day in ("2025-05-31", "2025-06-01", "2025-07-31", "2025-08-01")]
        assert counts == [2048, 200, 200, 300]

    def test_a_correction_recorded_later_is_invisible_with_an_earlier_known_at(
            self, world, writer, reader):
        signed = world.get(f"{LEASE_URL}/history", headers=reader).json()["events"][0]
        response = later(world, f"{LEASE_URL}/corrections", {"chip_count": 1024}, writer)
        corrected = answer_of(response, 200, kind="lease", record_id=LEASE_ID, version=2,
                              position=WORLD_SIZE + 1)
        assert corrected["recorded_at"] > signed["recorded_at"]
        then = read(world, LEASE_URL, reader, as_of="2025-05-01",
                    known_at=signed["recorded_at"])
        assert then["data"]["chip_count"] == 2048
        assert (then["version"], then["known_at"]) == (1, signed["recorded_at"])
        feed = world.get("/v1/events", headers=reader).json()["events"]
        assert then["position"] == max(  # the last event recorded by then (ms clocks may tie)
            e["position"] for e in feed if e["recorded_at"] <= signed["recorded_at"])
        assert signed["position"] <= then["position"] <= WORLD_SIZE
        now = read(world, LEASE_URL, reader, as_of="2025-05-01",
                   known_at=corrected["recorded_at"])
        assert now["data"]["chip_count"] == 1024
        assert (now["version"], now["position"]) == (2, WORLD_SIZE + 1)

    def test_a_correction_replaces_the_fact_for_all_valid_time_the_latest_winning(
            self, world, writer, reader):
        for body in ({"starts_on": "2025-03-01", "reason": "signed earlier"},
                     {"chip_count": 1000}, {"chip_count": 1500}):
            response = world.post(f"{LEASE_URL}/corrections", json=body, headers=writer)
            assert response.status_code == 200, response.text
        for day in ("2025-03-01", "2025-06-01", "2025-09-30"):
            record = read(world, LEASE_URL, reader, as_of=day)
            assert (record["data"]["starts_on"], record["data"]["chip_count"]) == (
                "2025-03-01", 1500)
            assert (record["lifecycle"], record["version"]) == ("active", 4)

    def test_a_correction_does_not_undo_a_later_amendment(self, world, writer, reader):
        amended = world.post(f"{LEASE_URL}/amendments", headers=writer,
                             json={"effective_from": "2025-06-01", "chip_count": 4096})
        assert amended.status_code == 200, amended.text
        amended_at = amended.json()["recorded_at"]
        corrected = later(world, f"{LEASE_URL}/corrections",
                          {"chip_count": 1024, "reason": "the signed contract said 1024"},
                          writer)
        assert corrected.status_code == 200, corrected.text
        assert read(world, LEASE_URL, reader, as_of="2025-05-01")["data"]["chip_count"] == 1024
        assert read(world, LEASE_URL, reader, as_of="2025-06-01")["data"]["chip_count"] == 4096
        assert read(world, LEASE_URL, reader, as_of="2025-09-01")["data"]["chip_count"] == 4096
        known_before = read(world, LEASE_URL, reader, as_of="2025-05-01", known_at=amended_at)
        assert known_before["data"]["chip_count"] == 2048

    def test_a_lease_is_pending_then_active_then_ended_on_its_inclusive_dates(
            self, world, writer, reader):
        def lifecycles() -> list[tuple[str, str | None]]:
            return [(r["lifecycle"], r["ended_from"]) for r in (
                read(world, LEASE_URL, reader, as_of=day) for day in (
                    "2025-03-31", "2025-04-01", "2025-06-30", "2025-07-01", "2025-09-30",
                    "2025-10-01"))]

        assert lifecycles() == [("pending", None), ("active", None), ("active", None),
                                ("active", None), ("active", None), ("ended", None)]
        response = world.post(f"{LEASE_URL}/termination", headers=writer,
                              json={"effective_from": "2025-07-01", "reason": "withdrawn"})
        assert response.status_code == 200, response.text
        ended = "2025-07-01"
        assert lifecycles() == [("pending", ended), ("active", ended), ("active", ended),
                                ("ended", ended), ("ended", ended), ("ended", ended)]

    def test_every_kind_reads_pending_active_or_ended_by_its_dates(
            self, world, writer, reader):
        endings = [(f"/v1/regulations/{H20_RULE['id']}/rescission", "2025-12-01"),
                   (f"/v1/licences/{LICENCE['id']}/revocation", "2025-10-01"),
                   (f"/v1/processing-activities/{ACTIVITY['id']}/end", "2025-09-01")]
        for path, effective_from in endings:
            response = world.post(path, json={"effective_from": effective_from},
                                  headers=writer)
            assert response.status_code == 200, response.text

        def states(path: str, *days: str) -> list[str]:
            return [read(world, path, reader, as_of=day)["lifecycle"] for day in days]

        assert states(f"/v1/regulations/{H20_RULE['id']}", "2025-04-08", "2025-04-09",
                      "2025-11-30", "2025-12-01") == ["pending", "active", "active", "ended"]
        assert states(f"/v1/licences/{LICENCE['id']}", "2025-08-07", "2025-08-08",
                      "2025-09-30", "2025-10-01") == ["pending", "active", "active", "ended"]
        assert states(f"/v1/processing-activities/{ACTIVITY['id']}", "2025-05-31",
                      "2025-06-01", "2025-08-31", "2025-09-01") == [
            "pending", "active", "active", "ended"]
        for path in ("/v1/firms/alibaba", "/v1/chip-models/nvidia-h20",
                     "/v1/data-centres/johor-dc1", f"/v1/shipments/{SHIPMENT['id']}"):
            assert states(path, "1999-01-01", "2099-12-31") == ["active", "active"]

    def test_a_record_is_unknown_at_a_known_at_before_its_creation(
            self, client, writer, reader):
        first = client.post("/v1/firms", json=ALIBABA, headers=writer)
        assert first.status_code == 201, first.text
        known_at = first.json()["recorded_at"]
        second = later(client, "/v1/firms", ALIBABA_SG, writer)
        assert second.status_code == 201, second.text
        assert second.json()["recorded_at"] > known_at
        problem = problem_of(client.get("/v1/firms/alibaba-sg", params={"known_at": known_at},
                                        headers=reader), 404)
        assert "alibaba-sg" in problem["detail"]
        assert read(client, "/v1/firms/alibaba", reader, known_at=known_at)["position"] == 1
        assert read(client, "/v1/firms/alibaba-sg", reader,
                    known_at=second.json()["recorded_at"])["position"] == 2
        problem_of(client.get("/v1/firms/alibaba", params={"known_at": "2001-01-01T00:00:00Z"},
                              headers=reader), 404)

    def test_an_unknown_id_is_a_404_problem_for_every_kind(self, world, reader):
        for spec in KINDS.values():
            for suffix in ("", "/history"):
                response = world.get(f"/v1/{spec.collection}/no-such-record{suffix}",
                                     headers=reader)
                problem = problem_of(response, 404)
                assert "no-such-record" in problem["detail"]
        problem_of(world.get("/v1/leases/alibaba", headers=reader), 404)  # a firm's id
        for params in ({"as_of": "2025-13-01"}, {"known_at": "yesterday"},
                       {"known_at": "9999-12-31T23:59:59-01:00"},  # past year 9999 in UTC
                       {"known_at": "0001-01-01T00:00:00+01:00"}):
            problem = problem_of(world.get(LEASE_URL, params=params, headers=reader), 422)
            assert problem["errors"][0]["loc"] == ["query", next(iter(params))]


# 3. History, the global feed, the integrity head ------------------------------------------------


class TestHistoryAndFeed:
    def test_a_history_lists_the_records_events_in_order(self, world, writer, reader):
        amended = world.post(f"{LEASE_URL}/amendments", headers=writer,
                             json={"effective_from": "2025-06-01", "chip_count": 4096})
        world.post("/v1/firms/alibaba/changes", headers=writer,
                   json={"effective_from": "2025-06-01", "name": "Other"})
        diligence = world.post(f"{LEASE_URL}/due-diligence", headers=writer,
                               json={"completed_on": "2025-05-20", "reference": "DD-17"})
        history = world.get(f"{LEASE_URL}/history", headers=reader)
        assert history.status_code == 200, history.text
        body = history.json()
        assert (body["kind"], body["id"]) == ("lease", LEASE_ID)
        events = body["events"]
        assert [e["type"] for e in events] == [
            "LeaseSigned", "LeaseAmended", "DueDiligenceRecorded"]
        assert [e["position"] for e in events] == [8, WORLD_SIZE + 1, WORLD_SIZE + 3]
        assert [e["version"] for e in events] == [1, 2, 3]
        assert events[0]["data"] == {k: v for k, v in LEASE.items() if k != "id"}
        assert events[1]["data"] == {"effective_from": "2025-06-01", "chip_count": 4096}
        assert events[2]["data"] == {"completed_on": "2025-05-20", "reference": "DD-17"}
        assert events[1]["recorded_at"] == amended.json()["recorded_at"]
        assert events[2]["recorded_at"] == diligence.json()["recorded_at"]
        for event in events:
            assert set(event) >= {"position", "recorded_at", "type", "data", "hash"}
            assert (event["kind"], event["record_id"]) == ("lease", LEASE_ID)
            assert TIMESTAMP.match(event["recorded_at"])
            assert HASH.match(event["hash"])
        assert len({e["hash"] for e in events}) == 3
        feed = world.get("/v1/events", params={"after": WORLD_SIZE}, headers=reader).json()
        assert [e for e in feed["events"] if e["record_id"] == LEASE_ID] == events[1:]

    def test_the_feed_lists_every_event_as_the_histories_do(self, world, reader):
        feed = world.get("/v1/events", headers=reader)
        assert feed.status_code == 200, feed.text
        body = feed.json()
        assert body["next_after"] is None
        events = body["events"]
        assert [e["position"] for e in events] == list(range(1, WORLD_SIZE + 1))
        assert [(e["kind"], e["record_id"]) for e in events] == [
            (KINDS_BY_COLLECTION[c], b["id"]) for c, b in WORLD]
        assert [e["type"] for e in events] == [
            "ChipModelRegistered", "ChipModelRegistered", "FirmRegistered", "FirmRegistered",
            "DataCentreRegistered", "RegulationEnacted", "LicenceGranted", "LeaseSigned",
            "ShipmentRecorded", "ProcessingStarted"]
        assert events[2]["data"] == {"name": "Alibaba Group", "hq_country": "CN",
                                     "parent_firm_id": None}
        assert len({e["hash"] for e in events}) == WORLD_SIZE
        for (collection, record), event in zip(WORLD, events, strict=True):
            history = world.get(f"/v1/{collection}/{record['id']}/history",
                                headers=reader).json()["events"]
            assert history == [event]

    def test_the_feed_pages_with_after_and_limit(self, world, reader):
        positions, after, pages = [], 0, 0
        while after is not None:
            page = world.get("/v1/events", params={"after": after, "limit": 3},
                             headers=reader).json()
            assert len(page["events"]) <= 3
            positions += [e["position"] for e in page["events"]]
            if page["next_after"] is not None:
                assert page["next_after"] == page["events"][-1]["position"]
            after = page["next_after"]
            pages += 1
        assert positions == list(range(1, WORLD_SIZE + 1))
        assert pages == 4  # 3 + 3 + 3 + 1

        page = world.get("/v1/events", params={"after": 7, "limit": 2}, headers=reader).json()
        assert ([e["position"] for e in page["events"]], page["next_after"]) == ([8, 9], 9)
        rest = world.get("/v1/events", params={"after": 9, "limit": 2}, headers=reader).json()
        assert ([e["position"] for e in rest["events"]], rest["next_after"]) == ([10], None)
        past = world.get("/v1/events", params={"after": 10}, headers=reader).json()
        assert past == {"events": [], "next_after": None, "next_cursor": None}
        for params in ({"limit": 0}, {"limit": 1001}, {"after": -1}, {"after": 2**63}):
            problem_of(world.get("/v1/events", params=params, headers=reader), 422)

    def test_the_integrity_head_is_the_last_events_hash(self, client, writer, reader):
        assert head(client, reader) == {"head_position": 0, "head_hash": "0" * 64,
                                        "head_recorded_at": None,
                                        "algorithm": "sha256-chain-v2"}
        assert client.get("/v1/events", headers=reader).json() == {
            "events": [], "next_after": None, "next_cursor": None}
        record_world(client, writer)
        client.post(f"{LEASE_URL}/corrections", json={"chip_count": 8}, headers=writer)
        integrity = head(client, reader)
        last = client.get("/v1/events", params={"after": WORLD_SIZE}, headers=reader).json()
        event = last["events"][-1]
        assert integrity["head_position"] == event["position"] == WORLD_SIZE + 1
        assert integrity["head_hash"] == event["hash"]
        assert integrity["head_recorded_at"] == event["recorded_at"]
        assert integrity["algorithm"] == "sha256-chain-v2"


# 4. Optimistic concurrency ----------------------------------------------------------------------


class TestIfMatch:
    AMENDMENT = {"effective_from": "2025-06-01", "chip_count": 4096}

    def test_an_append_with_the_current_version_succeeds(self, world, writer):
        response = world.post(f"{LEASE_URL}/amendments", json=self.AMENDMENT,
                              headers={**writer, "If-Match": "1"})
        answer_of(response, 200, kind="lease", record_id=LEASE_ID, version=2,
                  position=WORLD_SIZE + 1)
        etag = response.headers["etag"]  # '"2"', which If-Match takes back as it is
        response = world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1000},
                              headers={**writer, "If-Match": etag})
        answer_of(response, 200, kind="lease", record_id=LEASE_ID, version=3,
                  position=WORLD_SIZE + 2)
        response = world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1100},
                              headers=writer)  # without If-Match: unconditional
        answer_of(response, 200, kind="lease", record_id=LEASE_ID, version=4,
                  position=WORLD_SIZE + 3)

    def test_a_stale_version_is_412_and_appends_nothing(self, world, writer, reader):
        problem_of(world.post(f"{LEASE_URL}/termination", headers={**writer, "If-Match": "2"},
                              json={"effective_from": "2025-07-01"}), 412)  # not yet
        assert head_position(world, reader) == WORLD_SIZE
        moved = world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1000},
                           headers=writer)
        assert moved.status_code == 200, moved.text
        before = head(world, reader)
        response = world.post(f"{LEASE_URL}/amendments", json=self.AMENDMENT,
                              headers={**writer, "If-Match": "1"})
        problem = problem_of(response, 412)
        assert problem["title"] == "Precondition failed"
        assert head(world, reader) == before
        record = read(world, LEASE_URL, reader, as_of="2025-07-01")
        assert (record["version"], record["data"]["chip_count"]) == (2, 1000)


# 5. Idempotency ---------------------------------------------------------------------------------


class TestIdempotency:
    def test_a_retried_append_with_the_same_key_replays_the_first_answer(
            self, world, writer, reader):
        key = {"Idempotency-Key": "amend-lease-2025-06"}
        body = {"effective_from": "2025-06-01", "chip_count": 4096}
        first = world.post(f"{LEASE_URL}/amendments", json=body, headers={**writer, **key})
        answer = answer_of(first, 200, kind="lease", record_id=LEASE_ID, version=2,
                           position=WORLD_SIZE + 1)
        assert "idempotent-replayed" not in first.headers
        before = head(world, reader)
        retry = world.post(f"{LEASE_URL}/amendments", json=body, headers={**writer, **key})
        assert retry.status_code == 200, retry.text
        assert retry.json() == answer
        assert retry.headers["idempotent-replayed"] == "true"
        assert head(world, reader) == before
        history = world.get(f"{LEASE_URL}/history", headers=reader).json()["events"]
        assert [e["type"] for e in history] == ["LeaseSigned", "LeaseAmended"]

        key = {"Idempotency-Key": "firm-moonshot"}
        firm = {"id": "moonshot", "name": "Moonshot AI", "hq_country": "CN"}
        first = world.post("/v1/firms", json=firm, headers={**writer, **key})
        answer = answer_of(first, 201, kind="firm", record_id="moonshot", version=1,
                           position=WORLD_SIZE + 2)
        retry = world.post("/v1/firms", json=firm, headers={**writer, **key})
        assert retry.status_code == 201, retry.text
        assert retry.json() == answer
        assert retry.headers["idempotent-replayed"] == "true"
        assert head_position(world, reader) == WORLD_SIZE + 2

    def test_a_replay_answers_the_same_after_the_record_moved_on(self, world, writer, reader):
        key = {"Idempotency-Key": "correct-once"}
        body = {"chip_count": 1000}
        first = world.post(f"{LEASE_URL}/corrections", json=body, headers={**writer, **key})
        assert first.status_code == 200, first.text
        other_key = world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1000},
                               headers={**writer, "Idempotency-Key": "another"})
        answer_of(other_key, 200, kind="lease", record_id=LEASE_ID, version=3,
                  position=WORLD_SIZE + 2)  # another key is another request
        assert "idempotent-replayed" not in other_key.headers
        world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1200}, headers=writer)
        retry = world.post(f"{LEASE_URL}/corrections", json=body, headers={**writer, **key})
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
        assert head_position(world, reader) == WORLD_SIZE + 3
        assert read(world, LEASE_URL, reader, as_of="2025-05-01")["data"]["chip_count"] == 1200

    def test_the_same_key_with_a_different_body_is_422_and_appends_nothing(
            self, world, writer, reader):
        key = {"Idempotency-Key": "k-1"}
        first = world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1000},
                           headers={**writer, **key})
        assert first.status_code == 200, first.text
        before = head(world, reader)
        for path, body in [(f"{LEASE_URL}/corrections", {"chip_count": 999}),
                           (f"{LEASE_URL}/amendments",
                            {"effective_from": "2025-06-01", "chip_count": 1000})]:
            problem = problem_of(world.post(path, json=body, headers={**writer, **key}), 422)
            assert [e["loc"] for e in problem["errors"]] == [["header", "Idempotency-Key"]]
            assert problem["errors"][0]["type"] == "idempotency_key_reused"
        assert head(world, reader) == before
        assert read(world, LEASE_URL, reader, as_of="2025-07-01")["data"]["chip_count"] == 1000

    def test_a_refused_request_does_not_use_up_its_key(self, world, writer):
        key = {"Idempotency-Key": "k-3"}
        refused = world.post("/v1/leases", json={**LEASE, "id": "lease-2", "firm_id": "ghost"},
                             headers={**writer, **key})
        problem_of(refused, 422)
        accepted = world.post("/v1/leases", json={**LEASE, "id": "lease-2"},
                              headers={**writer, **key})
        answer_of(accepted, 201, kind="lease", record_id="lease-2", version=1,
                  position=WORLD_SIZE + 1)

    def test_repeating_a_create_with_identical_content_answers_the_original(
            self, world, writer, reader):
        original = world.get(f"{LEASE_URL}/history", headers=reader).json()["events"][0]
        repeat = world.post("/v1/leases", json=LEASE, headers=writer)
        answer = answer_of(repeat, 200, kind="lease", record_id=LEASE_ID, version=1,
                           position=original["position"])
        assert answer["recorded_at"] == original["recorded_at"]
        assert "idempotent-replayed" not in repeat.headers
        assert head_position(world, reader) == WORLD_SIZE
        world.post(f"{LEASE_URL}/corrections", json={"chip_count": 1000}, headers=writer)
        again = world.post("/v1/leases", json=LEASE, headers=writer)  # after the record moved
        assert again.json() == answer
        assert head_position(world, reader) == WORLD_SIZE + 1

    def test_a_create_with_an_existing_id_and_different_content_is_409(
            self, world, writer, reader):
        response = world.post("/v1/leases", json={**LEASE, "chip_count": 1}, headers=writer)
        problem = problem_of(response, 409)
        assert LEASE_ID in problem["detail"]
        assert head_position(world, reader) == WORLD_SIZE
        assert read(world, LEASE_URL, reader, as_of="2025-05-01")["data"]["chip_count"] == 2048
        same_id_other_kind = world.post("/v1/chip-models", headers=writer,
                                        json={**H100, "id": "alibaba"})
        answer_of(same_id_other_kind, 201, kind="chip_model", record_id="alibaba", version=1,
                  position=WORLD_SIZE + 1)


# 6. Batches -------------------------------------------------------------------------------------


DEEPSEEK = {"id": "deepseek", "name": "DeepSeek", "hq_country": "CN"}
DEEPSEEK_SG = {"id": "deepseek-sg", "name": "DeepSeek Singapore", "hq_country": "SG",
               "parent_firm_id": "deepseek"}
DS_LEASE = {**LEASE, "id": "lease-ds-johor", "firm_id": "deepseek-sg", "chip_count": 512}


class TestBatches:
    def test_every_line_is_appended_at_consecutive_positions(self, world, writer, reader):
        response = post_batch(
            world, writer,
            {"type": "firms", "body": DEEPSEEK},
            {"type": "leases/amendments", "id": LEASE_ID,
             "body": {"effective_from": "2025-06-01", "chip_count": 4096}},
            {"type": "shipments/corrections", "id": SHIPMENT["id"], "body": {"quantity": 900}},
        )
        assert response.status_code == 201, response.text
        body = response.json()
        first = WORLD_SIZE + 1
        assert (body["count"], body["appended"]) == (3, 3)
        assert body["positions"] == [first, first + 1, first + 2]
        assert [(r["kind"], r["id"], r["version"], r["position"]) for r in body["results"]] == [
            ("firm", "deepseek", 1, first), ("lease", LEASE_ID, 2, first + 1),
            ("shipment", SHIPMENT["id"], 2, first + 2)]
        assert len({r["recorded_at"] for r in body["results"]}) == 1  # one transaction
        assert head_position(world, reader) == first + 2
        events = world.get("/v1/events", params={"after": WORLD_SIZE},
                           headers=reader).json()["events"]
        assert [e["type"] for e in events] == ["FirmRegistered", "LeaseAmended",
                                               "ShipmentCorrected"]
        assert read(world, LEASE_URL, reader, as_of="2025-06-01")["data"]["chip_count"] == 4096

    def test_a_line_may_reference_a_record_created_earlier_in_the_batch(
            self, world, writer, reader):
        response = post_batch(
            world, writer,
            {"type": "firms", "body": DEEPSEEK},
            {"type": "firms", "body": DEEPSEEK_SG},
            {"type": "leases", "body": DS_LEASE},
            {"type": "leases/amendments", "id": "lease-ds-johor",
             "body": {"effective_from": "2025-07-01", "chip_count": 1024}},
            {"type": "leases/lease-ds-johor/due-diligence",
             "body": {"completed_on": "2025-04-15", "reference": "DD-DS-1"}},
        )
        assert response.status_code == 201, response.text
        assert response.json()["positions"] == list(range(WORLD_SIZE + 1, WORLD_SIZE + 6))
        lease = read(world, "/v1/leases/lease-ds-johor", reader, as_of="2025-07-01")
        assert (lease["version"], lease["data"]["chip_count"]) == (3, 1024)
        assert lease["due_diligence_from"] == "2025-04-15"
        assert read(world, "/v1/firms/deepseek-sg", reader)["data"]["parent_firm_id"] == (
            "deepseek")

    def test_an_invalid_third_line_refuses_the_batch_naming_it(self, world, writer, reader):
        before = head(world, reader)
        response = post_batch(
            world, writer,
            {"type": "firms", "body": DEEPSEEK},
            {"type": "firms", "body": DEEPSEEK_SG},
            {"type": "leases", "body": {**DS_LEASE, "chip_count": "many"}},
        )
        problem = problem_of(response, 422)
        assert [e["loc"] for e in problem["errors"]] == [["body", 3, "body", "chip_count"]]
        assert head(world, reader) == before
        for firm in ("deepseek", "deepseek-sg"):
            problem_of(world.get(f"/v1/firms/{firm}", headers=reader), 404)

    def test_an_unknown_reference_on_the_third_line_refuses_the_batch(
            self, world, writer, reader):
        before = head(world, reader)
        response = post_batch(
            world, writer,
            {"type": "firms", "body": DEEPSEEK},
            {"type": "firms", "body": DEEPSEEK_SG},
            {"type": "leases", "body": {**DS_LEASE, "data_centre_id": "no-such-dc"}},
        )
        problem = problem_of(response, 422)
        assert len(problem["errors"]) == 1
        error = problem["errors"][0]
        assert error["loc"][:2] == ["body", 3]
        assert error["loc"][-1] == "data_centre_id"
        assert error["type"] == "unknown_reference"
        assert "no-such-dc" in error["msg"]
        assert head(world, reader) == before
        problem_of(world.get("/v1/firms/deepseek", headers=reader), 404)
        # a reference to a record that only a later line creates is unknown too
        response = post_batch(world, writer, {"type": "firms", "body": DEEPSEEK_SG},
                              {"type": "firms", "body": DEEPSEEK})
        problem = problem_of(response, 422)
        assert problem["errors"][0]["loc"][:2] == ["body", 1]
        assert problem["errors"][0]["loc"][-1] == "parent_firm_id"
        assert head(world, reader) == before

    def test_a_third_line_the_record_refuses_leaves_earlier_lines_unrecorded(
            self, world, writer, reader):
        before = head(world, reader)
        response = post_batch(
            world, writer,
            {"type": "leases/amendments", "id": LEASE_ID,
             "body": {"effective_from": "2025-06-01", "chip_count": 4096}},
            {"type": "firms", "body": DEEPSEEK},
            {"type": "leases/termination", "id": LEASE_ID,
             "body": {"effective_from": "2026-01-01"}},  # after the lease already ends
        )
        problem = problem_of(response, 422)
        assert problem["errors"][0]["loc"][:2] == ["body", 3]
        assert problem["errors"][0]["loc"][-1] == "effective_from"
        assert head(world, reader) == before
        record = read(world, LEASE_URL, reader, as_of="2025-07-01")
        assert (record["version"], record["data"]["chip_count"]) == (1, 2048)
        problem_of(world.get("/v1/firms/deepseek", headers=reader), 404)

    def test_a_repeated_batch_appends_nothing_new(self, world, writer, reader):
        response = post_batch(world, writer, *({"type": c, "body": b} for c, b in WORLD[:3]))
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["count"], body["appended"], body["positions"]) == (3, 0, [])
        assert [r["position"] for r in body["results"]] == [1, 2, 3]
        assert head_position(world, reader) == WORLD_SIZE

        lines = ({"type": "firms", "body": DEEPSEEK}, {"type": "firms", "body": DEEPSEEK_SG})
        first = post_batch(world, writer, *lines, **{"Idempotency-Key": "batch-1"})
        assert first.status_code == 201, first.text
        assert first.json()["positions"] == [WORLD_SIZE + 1, WORLD_SIZE + 2]
        retry = post_batch(world, writer, *lines, **{"Idempotency-Key": "batch-1"})
        assert retry.status_code == 201, retry.text
        assert retry.json() == first.json()
        assert retry.headers["idempotent-replayed"] == "true"
        assert head_position(world, reader) == WORLD_SIZE + 2
