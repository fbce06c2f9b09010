"""Bad input is refused with the right status, as application/problem+json naming every bad
field once, and a refused request appends nothing (api.md, Conventions).

Every refusal goes through `Refusals.expect`, which reads the log's head before and after and
fails if the head moved. Tests that only send refusals share one recorded world per backend
(`refuse`, module-scoped); tests that also append get a fresh one (`fresh`).
"""

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from api.appends import ACTIONS
from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from tests.support.data import (
    ACTIVITY,
    ALIBABA,
    H20_RULE,
    H100,
    LEASE,
    LICENCE,
    SHIPMENT,
    record_world,
)
from tests.support.databases import BACKENDS, database_for

PROBLEM_JSON = "application/problem+json"
NDJSON = "application/x-ndjson"
MIB = 1024 * 1024
SQL_NAME = "x'); DROP TABLE stored_events; --"
BAD_IDS = ["Upper", "-lead", "a" * 65, "ünï", "", "a b", "x/y", SQL_NAME]

Loc = tuple[str | int, ...]


def problem_of(response: Response, status: int) -> dict[str, Any]:
    """Check the RFC 9457 shape; for a 422, every error entry's shape too."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    for name in ("type", "title", "detail"):
        assert isinstance(body[name], str), body
        assert body[name], body
    if status == 422:
        assert isinstance(body.get("errors"), list), body
        assert body["errors"], body
    for entry in body.get("errors", []):
        assert set(entry) == {"loc", "field", "msg", "type"}, entry
        assert isinstance(entry["loc"], list), entry
        assert entry["loc"], entry
        assert entry["field"] == ".".join(str(part) for part in entry["loc"]), entry
        assert isinstance(entry["msg"], str), entry
        assert entry["msg"], entry
        assert isinstance(entry["type"], str), entry
        assert entry["type"], entry
    return body


def locs_of(body: dict[str, Any]) -> list[Loc]:
    return [tuple(entry["loc"]) for entry in body.get("errors", [])]


class Refusals:
    """Send a request that must be refused, and prove that nothing was appended."""

    def __init__(self, client: TestClient, headers: dict[str, str]) -> None:
        self.client, self.headers = client, headers

    def head(self) -> int:
        response = self.client.get("/v1/integrity", headers=self.headers)
        assert response.status_code == 200, response.text
        position: int = response.json()["head_position"]
        return position

    def expect(
        self,
        method: str,
        path: str,
        status: int,
        *,
        locs: list[Loc] | None = None,
        headers: dict[str, str] | None = None,
        **request: Any,
    ) -> dict[str, Any]:
        """`locs`: exactly the error locations expected, one entry per bad field."""
        before = self.head()
        response = self.client.request(method, path, headers={**self.headers, **(headers or {})},
                                       **request)
        body = problem_of(response, status)
        if locs is not None:
            found = Counter(locs_of(body))
            assert found == Counter(locs), body["errors"]
        after = self.head()
        assert after == before, f"a refused {method} {path} appended {after - before} event(s)"
        return body

    def post(self, path: str, body: Any, status: int = 422, *, locs: list[Loc] | None = None,
             **request: Any) -> dict[str, Any]:
        return self.expect("POST", path, status, locs=locs, json=body, **request)

    def raw(self, path: str, content: bytes, status: int = 422, *,
            locs: list[Loc] | None = None, **request: Any) -> dict[str, Any]:
        """`content` sent as JSON unless `headers` say otherwise."""
        request.setdefault("headers", {"Content-Type": "application/json"})
        return self.expect("POST", path, status, locs=locs, content=content, **request)

    def accepted(self, path: str, body: Any, **request: Any) -> dict[str, Any]:
        """The counterpart: a valid request is appended (so the refusals are not vacuous)."""
        before = self.head()
        response = self.client.post(path, json=body, headers={**self.headers,
                                                              **request.pop("headers", {})},
                                    **request)
        assert response.status_code in (200, 201), response.text
        assert self.head() > before
        answer: dict[str, Any] = response.json()
        return answer


@pytest.fixture
def fresh(client: TestClient, writer: dict[str, str]) -> Refusals:
    """A fresh world, for tests that also append."""
    record_world(client, writer)
    return Refusals(client, writer)


@pytest.fixture(scope="module", params=BACKENDS)
def refuse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Refusals]:
    """One world per backend for the whole module, for tests that only send refusals: each
    refusal proves the head did not move, so they cannot disturb one another."""
    folder = tmp_path_factory.mktemp("refusals")
    with database_for(request.param, folder) as url:
        container = bootstrap(Settings(database_url=url, auth="enabled", log_format="console",
                                       signing_key_file=str(folder / "key.pem")))
        try:
            writer = {"Authorization": "Bearer " + KeyRing(container.store).create(Role.WRITER)[1]}
            with TestClient(create_app(container=container)) as client:
                record_world(client, writer)
                yield Refusals(client, writer)
        finally:
            container.close()


def without(body: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in names}


def ndjson(*lines: Any) -> bytes:
    return "\n".join(line if isinstance(line, str) else json.dumps(line)
                     for line in lines).encode()


# Malformed and mistyped bodies -----------------------------------------------------------------


class TestMalformedBodies:
    @pytest.mark.parametrize("raw", [
        b'{"id": "f9", "name": "Nine",', b"not json", b"", b'{"id": "f9"}}', b"\xff\xfe{}",
        b"{'id': 'f9'}",
    ])
    def test_malformed_json_is_one_error_on_the_body(self, refuse, raw):
        body = refuse.raw("/v1/firms", raw, locs=[("body",)])
        assert body["errors"][0]["type"] == "json_invalid"

    def test_malformed_json_on_a_later_append(self, refuse):
        refuse.raw("/v1/leases/lease-ali-johor/amendments", b'{"effective_from": ',
                   locs=[("body",)])

    @pytest.mark.parametrize("raw", [b"[1, 2]", b'"firm"', b"42", b"null"])
    def test_json_that_is_not_an_object(self, refuse, raw):
        refuse.raw("/v1/firms", raw, locs=[("body",)])

    @pytest.mark.parametrize(("path", "body", "loc"), [
        ("/v1/leases", {**LEASE, "id": "l9", "chip_count": "2048"}, ("body", "chip_count")),
        ("/v1/leases", {**LEASE, "id": "l9", "chip_count": "lots"}, ("body", "chip_count")),
        ("/v1/leases", {**LEASE, "id": "l9", "chip_count": 2048.5}, ("body", "chip_count")),
        ("/v1/leases", {**LEASE, "id": "l9", "chip_count": True}, ("body", "chip_count")),
        ("/v1/leases", {**LEASE, "id": "l9", "starts_on": 20250401}, ("body", "starts_on")),
        ("/v1/leases", {**LEASE, "id": "l9", "starts_on": "2025-13-01"}, ("body", "starts_on")),
        ("/v1/leases", {**LEASE, "id": "l9", "purposes": "training"}, ("body", "purposes")),
        ("/v1/chip-models", {**H100, "id": "c9", "tpp": "15830"}, ("body", "tpp")),
        ("/v1/processing-activities", {**ACTIVITY, "id": "a9", "sensitive": "true"},
         ("body", "sensitive")),
        ("/v1/processing-activities", {**ACTIVITY, "id": "a9", "sensitive": 1},
         ("body", "sensitive")),
        ("/v1/firms", {**ALIBABA, "id": "f9", "name": 42}, ("body", "name")),
        ("/v1/firms", {**ALIBABA, "id": 9}, ("body", "id")),
        ("/v1/shipments", {**SHIPMENT, "id": "s9", "quantity": "800"}, ("body", "quantity")),
        ("/v1/leases/lease-ali-johor/corrections", {"chip_count": "5"}, ("body", "chip_count")),
        ("/v1/leases/lease-ali-johor/amendments",
         {"effective_from": "2025-05-01", "chip_count": "5"}, ("body", "chip_count")),
    ])
    def test_wrong_types_are_refused_not_coerced(self, refuse, path, body, loc):
        refuse.post(path, body, locs=[loc])

    def test_each_bad_field_is_named_once(self, refuse):
        body = {**LEASE, "id": "l9", "chip_count": "5", "starts_on": "2025-13-01",
                "purposes": ["training", "mining"], "colour": "red"}
        refuse.post("/v1/leases", body, locs=[
            ("body", "chip_count"), ("body", "starts_on"), ("body", "purposes", 1),
            ("body", "colour"),
        ])

    def test_missing_required_fields_are_each_named(self, refuse):
        refuse.post("/v1/leases", without(LEASE, "firm_id", "chip_count"),
                    locs=[("body", "firm_id"), ("body", "chip_count")])

    @pytest.mark.parametrize(("path", "body", "locs"), [
        ("/v1/firms", {**ALIBABA, "id": "f9", "colour": "red"}, [("body", "colour")]),
        ("/v1/firms", {**ALIBABA, "id": "f9", "colour": "red", "size": 3},
         [("body", "colour"), ("body", "size")]),
        ("/v1/leases/lease-ali-johor/amendments",
         {"effective_from": "2025-05-01", "firm_id": "alibaba"}, [("body", "firm_id")]),
        ("/v1/chip-models/nvidia-h100/corrections", {"id": "nvidia-h200", "vendor": "NVIDIA"},
         [("body", "id")]),
        ("/v1/leases/lease-ali-johor/termination", {"effective_from": "2025-06-01", "why": "x"},
         [("body", "why")]),
    ])
    def test_unknown_fields_are_refused(self, refuse, path, body, locs):
        refuse.post(path, body, locs=locs)

    def test_an_empty_patch_is_refused(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/amendments", {"effective_from": "2025-05-01"})
        refuse.post("/v1/firms/alibaba/corrections", {"reason": "nothing to say"})


# Field values ----------------------------------------------------------------------------------


class TestFieldValues:
    @pytest.mark.parametrize("code", ["XX", "cn", "CHN", "", "C", "C1", "Cn", " CN"])
    def test_bad_country_codes(self, refuse, code):
        refuse.post("/v1/firms", {**ALIBABA, "id": "f9", "hq_country": code},
                    locs=[("body", "hq_country")])

    def test_bad_country_codes_in_lists_name_the_index(self, refuse):
        refuse.post("/v1/licences", {**LICENCE, "id": "lic9",
                                     "destination_countries": ["CN", "XX", "HK", "chn"]},
                    locs=[("body", "destination_countries", 1),
                          ("body", "destination_countries", 3)])
        refuse.post("/v1/processing-activities",
                    {**ACTIVITY, "id": "a9", "data_subject_countries": ["ZZ"]},
                    locs=[("body", "data_subject_countries", 0)])

    def test_bad_country_codes_everywhere_else(self, refuse):
        refuse.post("/v1/shipments", {**SHIPMENT, "id": "s9", "from_country": "USA",
                                      "to_country": "cn"},
                    locs=[("body", "from_country"), ("body", "to_country")])
        refuse.post("/v1/firms/alibaba/changes", {"effective_from": "2025-05-01",
                                                  "hq_country": "XX"},
                    locs=[("body", "hq_country")])
        body = refuse.post("/v1/regulations", {**H20_RULE, "id": "r9", "rule": {
            **H20_RULE["rule"], "to_countries": ["CN", "XX"]}})
        (loc,) = locs_of(body)
        assert loc[:2] == ("body", "rule")
        assert loc[-2:] == ("to_countries", 1)

    @pytest.mark.parametrize(("path", "body", "loc"), [
        ("/v1/leases", {**LEASE, "id": "l9", "chip_count": 0}, ("body", "chip_count")),
        ("/v1/leases", {**LEASE, "id": "l9", "chip_count": -2048}, ("body", "chip_count")),
        ("/v1/shipments", {**SHIPMENT, "id": "s9", "quantity": 0}, ("body", "quantity")),
        ("/v1/shipments", {**SHIPMENT, "id": "s9", "quantity": -1}, ("body", "quantity")),
        ("/v1/licences", {**LICENCE, "id": "lic9", "quantity": 0}, ("body", "quantity")),
        ("/v1/chip-models", {**H100, "id": "c9", "tpp": 0}, ("body", "tpp")),
        ("/v1/chip-models", {**H100, "id": "c9", "tpp": -15830.5}, ("body", "tpp")),
        ("/v1/chip-models", {**H100, "id": "c9", "performance_density": 0},
         ("body", "performance_density")),
        ("/v1/processing-activities", {**ACTIVITY, "id": "a9", "subject_count": 0},
         ("body", "subject_count")),
        ("/v1/leases/lease-ali-johor/amendments",
         {"effective_from": "2025-05-01", "chip_count": 0}, ("body", "chip_count")),
        ("/v1/leases/lease-ali-johor/corrections", {"chip_count": -1}, ("body", "chip_count")),
        ("/v1/shipments/ship-h20-0501/corrections", {"quantity": 0}, ("body", "quantity")),
        ("/v1/chip-models/nvidia-h20/corrections", {"tpp": -1}, ("body", "tpp")),
    ])
    def test_counts_must_be_positive(self, refuse, path, body, loc):
        refuse.post(path, body, locs=[loc])

    def test_required_fields_cannot_be_nulled(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/corrections", {"chip_count": None})


# Dates in order --------------------------------------------------------------------------------


class TestDateOrder:
    def test_a_lease_cannot_end_before_it_starts(self, refuse):
        refuse.post("/v1/leases", {**LEASE, "id": "l9", "ends_on": "2025-03-31"},
                    locs=[("body", "ends_on")])

    def test_a_licence_cannot_expire_before_it_is_valid(self, refuse):
        refuse.post("/v1/licences", {**LICENCE, "id": "lic9", "valid_to": "2025-08-07"},
                    locs=[("body", "valid_to")])

    def test_a_processing_activity_cannot_end_before_it_starts(self, refuse):
        refuse.post("/v1/processing-activities",
                    {**ACTIVITY, "id": "a9", "ends_on": "2025-05-31"}, locs=[("body", "ends_on")])

    def test_a_correction_cannot_put_the_end_before_the_start(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/corrections", {"ends_on": "2025-03-01"},
                    locs=[("body", "ends_on")])
        body = refuse.post("/v1/leases/lease-ali-johor/corrections",
                           {"starts_on": "2025-10-01", "reason": "typo"})
        (loc,) = locs_of(body)
        assert loc in {("body", "starts_on"), ("body", "ends_on")}

    def test_an_amendment_cannot_put_the_end_before_the_start(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/amendments",
                    {"effective_from": "2025-05-01", "ends_on": "2025-03-01"},
                    locs=[("body", "ends_on")])
        refuse.post("/v1/processing-activities/ft-bank-sg/changes",
                    {"effective_from": "2025-07-01", "ends_on": "2025-05-01"},
                    locs=[("body", "ends_on")])

    def test_an_amendment_cannot_take_effect_before_the_lease_starts(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/amendments",
                    {"effective_from": "2025-03-01", "chip_count": 10},
                    locs=[("body", "effective_from")])


# References ------------------------------------------------------------------------------------


class TestReferences:
    def test_a_lease_naming_unknown_records_names_each(self, refuse):
        body = refuse.post("/v1/leases", {**LEASE, "id": "l9", "firm_id": "no-firm",
                                          "data_centre_id": "no-dc", "chip_model": "no-chip"},
                           locs=[("body", "firm_id"), ("body", "data_centre_id"),
                                 ("body", "chip_model")])
        assert {e["type"] for e in body["errors"]} == {"unknown_reference"}

    @pytest.mark.parametrize("field", ["firm_id", "data_centre_id", "chip_model"])
    def test_a_lease_naming_one_unknown_record(self, refuse, field):
        refuse.post("/v1/leases", {**LEASE, "id": "l9", field: "nothing-here"},
                    locs=[("body", field)])

    def test_a_reference_to_a_record_of_another_kind_is_unknown(self, refuse):
        refuse.post("/v1/leases", {**LEASE, "id": "l9", "firm_id": "johor-dc1"},
                    locs=[("body", "firm_id")])

    def test_a_shipment_naming_an_unknown_licence(self, refuse):
        refuse.post("/v1/shipments", {**SHIPMENT, "id": "s9", "licence_id": "no-licence"},
                    locs=[("body", "licence_id")])
        refuse.post("/v1/shipments", {**SHIPMENT, "id": "s9", "consignee_firm_id": "no-firm"},
                    locs=[("body", "consignee_firm_id")])

    def test_a_licence_chip_models_item_names_its_index(self, refuse):
        refuse.post("/v1/licences",
                    {**LICENCE, "id": "lic9",
                     "chip_models": ["nvidia-h20", "no-chip", "nvidia-h100", "gone"]},
                    locs=[("body", "chip_models", 1), ("body", "chip_models", 3)])
        refuse.post("/v1/licences", {**LICENCE, "id": "lic9", "holder_firm_id": "no-firm"},
                    locs=[("body", "holder_firm_id")])

    def test_later_appends_check_references_too(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/amendments",
                    {"effective_from": "2025-05-01", "chip_model": "no-chip"},
                    locs=[("body", "chip_model")])
        refuse.post("/v1/firms/alibaba-sg/changes",
                    {"effective_from": "2025-05-01", "parent_firm_id": "no-firm"},
                    locs=[("body", "parent_firm_id")])
        refuse.post("/v1/shipments/ship-h20-0501/corrections", {"licence_id": "no-licence"},
                    locs=[("body", "licence_id")])


# Rules -----------------------------------------------------------------------------------------


class TestRules:
    def test_an_unknown_rule_kind(self, refuse):
        refuse.post("/v1/regulations", {**H20_RULE, "id": "r9", "rule": {
            **H20_RULE["rule"], "kind": "chip_tariff"}}, locs=[("body", "rule")])

    def test_a_rule_without_a_kind(self, refuse):
        refuse.post("/v1/regulations", {**H20_RULE, "id": "r9", "rule": without(
            H20_RULE["rule"], "kind")}, locs=[("body", "rule")])

    @pytest.mark.parametrize(("rule", "path_end"), [
        ({**H20_RULE["rule"], "max_tpp": 4800}, ("max_tpp",)),
        ({**H20_RULE["rule"], "chips": {"models": ["nvidia-h20"], "vendor": "NVIDIA"}},
         ("chips", "vendor")),
        ({"kind": "data_localisation", "data_subject_countries": ["CN"], "strict": True},
         ("strict",)),
    ])
    def test_unknown_rule_parameters(self, refuse, rule, path_end):
        body = refuse.post("/v1/regulations", {**H20_RULE, "id": "r9", "rule": rule})
        (loc,) = locs_of(body)
        assert loc[:2] == ("body", "rule")
        assert loc[-len(path_end):] == path_end
        assert body["errors"][0]["type"] == "extra_forbidden"

    def test_an_export_licence_rule_needs_a_licence_authority(self, refuse):
        body = refuse.post("/v1/regulations", {**H20_RULE, "id": "r9", "rule": without(
            H20_RULE["rule"], "licence_authority")})
        (loc,) = locs_of(body)
        assert loc[:2] == ("body", "rule")
        assert loc[-1] == "licence_authority"
        assert body["errors"][0]["type"] == "missing"

    def test_a_remote_access_violation_rule_needs_a_licence_authority(self, refuse):
        refuse.post("/v1/regulations", {**H20_RULE, "id": "r9", "rule": {
            "kind": "remote_compute_access", "lessee_hq_countries": ["CN"]}})

    def test_amendments_validate_their_rule_too(self, refuse):
        refuse.post("/v1/regulations/us-bis-h20-2025/amendments",
                    {"effective_from": "2025-06-01", "rule": {"kind": "nope"}},
                    locs=[("body", "rule")])
        body = refuse.post("/v1/regulations/us-bis-h20-2025/amendments",
                           {"effective_from": "2025-06-01",
                            "rule": {**H20_RULE["rule"], "threshold": 1}})
        assert locs_of(body)[0][-1] == "threshold"


# Ids -------------------------------------------------------------------------------------------


class TestIds:
    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_a_bad_id_in_a_body_is_refused(self, refuse, bad):
        refuse.post("/v1/firms", {**ALIBABA, "id": bad}, locs=[("body", "id")])

    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_a_bad_id_as_a_reference_is_refused(self, refuse, bad):
        refuse.post("/v1/leases", {**LEASE, "id": "l9", "firm_id": bad},
                    locs=[("body", "firm_id")])

    @pytest.mark.parametrize("bad", BAD_IDS)
    def test_a_bad_id_in_a_path_is_not_found(self, refuse, bad):
        refuse.expect("POST", f"/v1/firms/{bad}/changes", 404,
                      json={"effective_from": "2025-05-01", "name": "Renamed"})
        refuse.expect("POST", f"/v1/leases/{bad}/termination", 404,
                      json={"effective_from": "2025-06-01"})
        if bad:  # /v1/firms/ (no id) is the collection, not a record
            problem_of(refuse.client.get(f"/v1/firms/{bad}", headers=refuse.headers), 404)
        problem_of(refuse.client.get(f"/v1/firms/{bad}/history", headers=refuse.headers), 404)


# Sizes -----------------------------------------------------------------------------------------


def _padded_firm(size: int, firm_id: str) -> bytes:
    """A valid firm body padded with JSON whitespace to exactly `size` bytes."""
    core = json.dumps({**ALIBABA, "id": firm_id}).encode()
    return core[:-1] + b" " * (size - len(core)) + b"}"


class TestSizes:
    def test_a_body_over_one_mib_is_413(self, refuse):
        raw = _padded_firm(MIB + 1, "f-big")
        assert len(raw) == MIB + 1
        refuse.raw("/v1/firms", raw, 413, headers={"Content-Type": "application/json"})

    def test_a_streamed_body_over_one_mib_is_413(self, refuse):
        def chunks() -> Iterator[bytes]:
            raw = _padded_firm(2 * MIB, "f-big")
            for start in range(0, len(raw), 64 * 1024):
                yield raw[start:start + 64 * 1024]

        refuse.expect("POST", "/v1/firms", 413, content=chunks(),
                      headers={"Content-Type": "application/json"})

    def test_a_batch_over_one_mib_is_413(self, refuse):
        line = {"type": "firms", "body": {**ALIBABA, "id": "f-big"}}
        raw = ndjson(*[line] * (MIB // len(json.dumps(line)) + 10))
        assert len(raw) > MIB
        refuse.raw("/v1/events:batch", raw, 413, headers={"Content-Type": NDJSON})

    def test_a_later_append_over_one_mib_is_413(self, refuse):
        raw = b'{"effective_from": "2025-06-01"' + b" " * MIB + b"}"
        refuse.raw("/v1/leases/lease-ali-johor/termination", raw, 413)


# SQL-looking strings are data ------------------------------------------------------------------


class TestSqlLookingStrings:
    def test_they_are_stored_verbatim_and_refused_as_ids(self, fresh):
        names = [SQL_NAME, "Robert'); DROP TABLE chipledger_api_keys;--",
                 '"; DELETE FROM stored_events WHERE 1=1; --', "%' OR '1'='1", "a\\'; --"]
        for number, name in enumerate(names):
            fresh.accepted("/v1/firms", {**ALIBABA, "id": f"sql-{number}", "name": name})
        fresh.accepted("/v1/leases/lease-ali-johor/termination",
                       {"effective_from": "2025-06-01", "reason": SQL_NAME})
        for number, name in enumerate(names):
            read = fresh.client.get(f"/v1/firms/sql-{number}", headers=fresh.headers)
            assert read.status_code == 200, read.text
            assert read.json()["data"]["name"] == name
        history = fresh.client.get("/v1/leases/lease-ali-johor/history",
                                   headers=fresh.headers).json()
        assert history["events"][-1]["data"]["reason"] == SQL_NAME

        fresh.post("/v1/firms", {**ALIBABA, "id": SQL_NAME}, locs=[("body", "id")])
        fresh.post("/v1/leases", {**LEASE, "id": "l9", "firm_id": SQL_NAME},
                   locs=[("body", "firm_id")])
        fresh.expect("POST", f"/v1/firms/{SQL_NAME}/corrections", 404, json={"name": "x"})
        problem_of(fresh.client.get(f"/v1/firms/{SQL_NAME}", headers=fresh.headers), 404)

        head = fresh.head()
        assert head == 10 + len(names) + 1
        events = fresh.client.get("/v1/events", params={"limit": 1000},
                                  headers=fresh.headers).json()["events"]
        assert [e["position"] for e in events] == list(range(1, head + 1))
        verified = fresh.client.post("/v1/integrity/verification",
                                     headers={"Authorization": "Bearer " + _auditor_key(fresh)})
        assert verified.status_code == 200, verified.text
        assert verified.json()["ok"] is True
        assert verified.json()["verified_through"] == head


def _auditor_key(refusals: Refusals) -> str:
    return KeyRing(refusals.client.app.state.container.store).create(Role.AUDITOR)[1]


# Lifecycles ------------------------------------------------------------------------------------


class TestLifecycle:
    def test_a_terminated_lease_cannot_be_amended_or_terminated_again(self, fresh):
        fresh.accepted("/v1/leases/lease-ali-johor/amendments",
                       {"effective_from": "2025-05-01", "chip_count": 1024})
        fresh.accepted("/v1/leases/lease-ali-johor/termination", {"effective_from": "2025-06-01"})
        for day in ("2025-06-01", "2025-06-02", "2025-09-30"):
            fresh.post("/v1/leases/lease-ali-johor/amendments",
                       {"effective_from": day, "chip_count": 10},
                       locs=[("body", "effective_from")])
        for day in ("2025-06-01", "2025-05-15", "2025-07-01"):
            fresh.post("/v1/leases/lease-ali-johor/termination", {"effective_from": day},
                       locs=[("body", "effective_from")])

    def test_a_lease_cannot_be_terminated_outside_its_span(self, fresh):
        fresh.post("/v1/leases/lease-ali-johor/termination", {"effective_from": "2025-03-31"},
                   locs=[("body", "effective_from")])
        fresh.post("/v1/leases/lease-ali-johor/termination", {"effective_from": "2025-10-01"},
                   locs=[("body", "effective_from")])

    def test_a_licence_cannot_be_revoked_twice(self, fresh):
        fresh.accepted("/v1/licences/bis-lic-h20-ali/revocation",
                       {"effective_from": "2025-09-01", "reason": "end-use concerns"})
        fresh.post("/v1/licences/bis-lic-h20-ali/revocation", {"effective_from": "2025-09-01"},
                   locs=[("body", "effective_from")])
        fresh.post("/v1/licences/bis-lic-h20-ali/revocation", {"effective_from": "2025-10-01"},
                   locs=[("body", "effective_from")])

    def test_a_regulation_cannot_be_rescinded_before_it_takes_effect(self, fresh):
        fresh.post("/v1/regulations/us-bis-h20-2025/rescission",
                   {"effective_from": "2025-04-08", "announced_on": "2025-04-01"},
                   locs=[("body", "effective_from")])
        fresh.accepted("/v1/regulations/us-bis-h20-2025/rescission",
                       {"effective_from": "2025-07-14"})
        fresh.post("/v1/regulations/us-bis-h20-2025/rescission",
                   {"effective_from": "2025-08-01"}, locs=[("body", "effective_from")])
        fresh.post("/v1/regulations/us-bis-h20-2025/amendments",
                   {"effective_from": "2025-07-14", "rule": H20_RULE["rule"]},
                   locs=[("body", "effective_from")])

    def test_an_ended_activity_cannot_end_again(self, fresh):
        fresh.accepted("/v1/processing-activities/ft-bank-sg/end",
                       {"effective_from": "2025-08-01"})
        fresh.post("/v1/processing-activities/ft-bank-sg/end", {"effective_from": "2025-09-01"},
                   locs=[("body", "effective_from")])
        fresh.post("/v1/processing-activities/ft-bank-sg/changes",
                   {"effective_from": "2025-08-01", "sensitive": False},
                   locs=[("body", "effective_from")])


class TestProcessingLocation:
    def test_both_a_data_centre_and_a_country_is_refused(self, refuse):
        body = refuse.post("/v1/processing-activities",
                           {**ACTIVITY, "id": "a9", "location_country": "SG"})
        (entry,) = body["errors"]
        assert "data_centre_id" in entry["msg"]
        assert "location_country" in entry["msg"]

    def test_neither_a_data_centre_nor_a_country_is_refused(self, refuse):
        body = refuse.post("/v1/processing-activities",
                           {**without(ACTIVITY, "data_centre_id"), "id": "a9"})
        (entry,) = body["errors"]
        assert "data_centre_id" in entry["msg"]
        assert "location_country" in entry["msg"]
        refuse.post("/v1/processing-activities",
                    {**without(ACTIVITY, "data_centre_id"), "id": "a9", "data_centre_id": None,
                     "location_country": None})

    def test_a_change_or_correction_cannot_leave_both_or_neither(self, refuse):
        refuse.post("/v1/processing-activities/ft-bank-sg/changes",
                    {"effective_from": "2025-07-01", "location_country": "SG",
                     "data_centre_id": "johor-dc1"})
        refuse.post("/v1/processing-activities/ft-bank-sg/corrections",
                    {"data_centre_id": None, "reason": "unknown"})


# Unknown records, conflicts, idempotency -------------------------------------------------------


LATER_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("chip-models", "corrections"): {"vendor": "NVIDIA Corp"},
    ("firms", "changes"): {"effective_from": "2025-05-01", "name": "Renamed"},
    ("firms", "corrections"): {"name": "Renamed"},
    ("data-centres", "changes"): {"effective_from": "2025-05-01", "name": "Renamed"},
    ("data-centres", "corrections"): {"name": "Renamed"},
    ("regulations", "amendments"): {"effective_from": "2025-06-01", "rule": H20_RULE["rule"]},
    ("regulations", "rescission"): {"effective_from": "2025-06-01"},
    ("regulations", "suspension"): {"effective_from": "2025-06-01"},
    ("regulations", "reinstatement"): {"effective_from": "2025-06-01"},
    ("licences", "revocation"): {"effective_from": "2025-09-01"},
    ("leases", "amendments"): {"effective_from": "2025-05-01", "chip_count": 10},
    ("leases", "termination"): {"effective_from": "2025-06-01"},
    ("leases", "due-diligence"): {"completed_on": "2025-05-01", "reference": "DD-1"},
    ("leases", "corrections"): {"chip_count": 10},
    ("shipments", "corrections"): {"quantity": 10},
    ("processing-activities", "changes"): {"effective_from": "2025-07-01", "sensitive": False},
    ("processing-activities", "end"): {"effective_from": "2025-07-01"},
    ("processing-activities", "corrections"): {"sensitive": False},
}


class TestUnknownRecordsAndConflicts:
    def test_every_later_append_has_a_sample_body(self):
        assert set(LATER_BODIES) == set(ACTIONS)

    def test_a_later_append_on_an_unknown_record_is_404(self, refuse):
        for (collection, segment), body in LATER_BODIES.items():
            refuse.post(f"/v1/{collection}/no-such-record/{segment}", body, 404)

    def test_a_later_append_needs_the_right_kind(self, refuse):
        """`alibaba` is a firm: as a lease it is unknown."""
        refuse.post("/v1/leases/alibaba/termination", {"effective_from": "2025-06-01"}, 404)

    def test_a_create_with_an_existing_id_and_other_content_is_409(self, refuse):
        refuse.post("/v1/firms", {**ALIBABA, "name": "Someone else"}, 409)
        refuse.post("/v1/leases", {**LEASE, "chip_count": 1}, 409)

    def test_a_stale_if_match_is_412(self, refuse):
        refuse.post("/v1/leases/lease-ali-johor/amendments",
                    {"effective_from": "2025-05-01", "chip_count": 10}, 412,
                    headers={"If-Match": '"7"'})
        refuse.post("/v1/leases/lease-ali-johor/amendments",
                    {"effective_from": "2025-05-01", "chip_count": 10},
                    locs=[("header", "If-Match")], headers={"If-Match": "latest"})

    def test_an_idempotency_key_reused_with_another_body_is_422(self, fresh):
        key = {"Idempotency-Key": "firm-f9-attempt-1"}
        first = fresh.accepted("/v1/firms", {**ALIBABA, "id": "f9"}, headers=key)
        before = fresh.head()
        again = fresh.client.post("/v1/firms", json={**ALIBABA, "id": "f9"},
                                  headers={**fresh.headers, **key})
        assert again.status_code == 201, again.text
        assert again.json() == first
        assert fresh.head() == before
        body = fresh.post("/v1/firms", {**ALIBABA, "id": "f10"}, headers=key,
                          locs=[("header", "Idempotency-Key")])
        assert body["errors"][0]["type"] == "idempotency_key_reused"
        fresh.post("/v1/firms", {**ALIBABA, "id": "f9", "name": "Other"}, headers=key,
                   locs=[("header", "Idempotency-Key")])
        fresh.post("/v1/leases", {**LEASE, "id": "f9"}, headers=key,
                   locs=[("header", "Idempotency-Key")])
        problem_of(fresh.client.get("/v1/firms/f10", headers=fresh.headers), 404)

    @pytest.mark.parametrize("key", ["", "k" * 256, "tab\there"])
    def test_a_malformed_idempotency_key_is_422(self, refuse, key):
        refuse.post("/v1/firms", {**ALIBABA, "id": "f9"}, headers={"Idempotency-Key": key},
                    locs=[("header", "Idempotency-Key")])


# Batches ---------------------------------------------------------------------------------------


GOOD_LINE = {"type": "firms", "body": {"id": "batch-firm", "name": "Batch", "hq_country": "SG"}}


class TestBatches:
    @pytest.mark.parametrize("media", ["application/json", "text/plain", None])
    def test_a_batch_that_is_not_ndjson_is_415(self, refuse, media):
        headers = {"Content-Type": media} if media else {}
        refuse.raw("/v1/events:batch", ndjson(GOOD_LINE), 415, headers=headers)

    @pytest.mark.parametrize("raw", [b"", b"\n\n", b"  \n\t\n"])
    def test_an_empty_batch_is_422(self, refuse, raw):
        refuse.raw("/v1/events:batch", raw, headers={"Content-Type": NDJSON}, locs=[("body",)])

    def test_a_bad_line_refuses_the_whole_batch_naming_its_line(self, refuse):
        raw = ndjson(GOOD_LINE, "", {"type": "firms", "body": {**ALIBABA, "id": "b2",
                                                                "hq_country": "XX"}},
                     "{not json", {"type": "warp-drives", "body": {}},
                     {"type": "firms", "body": {**ALIBABA, "id": "b3", "hq_country": 7}})
        refuse.raw("/v1/events:batch", raw, headers={"Content-Type": NDJSON}, locs=[
            ("body", 3, "body", "hq_country"), ("body", 4), ("body", 5, "type"),
            ("body", 6, "body", "hq_country"),
        ])
        problem_of(refuse.client.get("/v1/firms/batch-firm", headers=refuse.headers), 404)

    def test_a_refused_record_refuses_the_whole_batch_naming_its_line(self, refuse):
        raw = ndjson(GOOD_LINE, "",
                     {"type": "leases", "body": {**LEASE, "id": "l9", "firm_id": "no-firm"}})
        refuse.raw("/v1/events:batch", raw, headers={"Content-Type": NDJSON},
                   locs=[("body", 3, "body", "firm_id")])
        problem_of(refuse.client.get("/v1/firms/batch-firm", headers=refuse.headers), 404)

    def test_a_single_refused_line_is_named_too(self, refuse):
        raw = ndjson({"type": "leases/termination", "id": "lease-ali-johor",
                      "body": {"effective_from": "2025-01-01"}})
        refuse.raw("/v1/events:batch", raw, headers={"Content-Type": NDJSON},
                   locs=[("body", 1, "body", "effective_from")])

    def test_a_batch_line_on_an_unknown_record_appends_nothing(self, refuse):
        raw = ndjson(GOOD_LINE, {"type": "leases/termination", "id": "no-lease",
                                 "body": {"effective_from": "2025-06-01"}})
        before = refuse.head()
        response = refuse.client.post("/v1/events:batch", content=raw, headers={
            **refuse.headers, "Content-Type": NDJSON})
        assert response.status_code in (404, 422), response.text
        problem_of(response, response.status_code)
        assert refuse.head() == before


# The valid neighbours of the refusals above are accepted, so the refusals are not vacuous ------


class TestValidNeighbours:
    def test_valid_neighbours_of_refused_requests_are_accepted(self, fresh):
        fresh.accepted("/v1/leases", {**LEASE, "id": "l-one-day", "ends_on": LEASE["starts_on"]})
        fresh.accepted("/v1/licences", {**LICENCE, "id": "lic-one-day",
                                        "valid_to": LICENCE["valid_from"]})
        fresh.accepted("/v1/firms", {**ALIBABA, "id": "a" * 64})
        fresh.accepted("/v1/firms", {**ALIBABA, "id": "0.a_b-c"})
        fresh.accepted("/v1/processing-activities",
                       {**without(ACTIVITY, "data_centre_id"), "id": "a-sg",
                       "location_country": "SG"})
        fresh.accepted("/v1/leases/lease-ali-johor/amendments",
                       {"effective_from": LEASE["starts_on"], "chip_count": 1})

        raw = _padded_firm(MIB, "f-exact")
        before = fresh.head()
        response = fresh.client.post("/v1/firms", content=raw, headers={
            **fresh.headers, "Content-Type": "application/json"})
        assert response.status_code == 201, response.text
        assert fresh.head() == before + 1

        before = fresh.head()
        response = fresh.client.post("/v1/events:batch", content=ndjson(GOOD_LINE, ""),
                                     headers={**fresh.headers, "Content-Type": NDJSON})
        assert response.status_code == 201, response.text
        assert fresh.head() == before + 1
