"""What the engine cannot hold is refused at the boundary, the same on every way in: single
appends, batches, `chipledger import` and the what-ifs of replays (issue 11).

Each refusal answers application/problem+json naming its field, and moves neither the log's
head nor the count of rows in the events table (`Boundary.expect`). What the bounds allow is
accepted, and the projection and a replay take it.
"""

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.cli import cli as chipledger
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.runner import ProjectionRunner
from infra.settings import Settings
from tests.api.test_refusals import NDJSON, Loc, Refusals, locs_of, problem_of
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

JSON_TYPE = {"Content-Type": "application/json"}
NDJSON_TYPE = {"Content-Type": NDJSON}


class Boundary(Refusals):
    """Refusals whose head is the log's head position and the events table's row count."""

    def __init__(self, client: TestClient, headers: dict[str, str], container: Container
                 ) -> None:
        super().__init__(client, headers)
        self.container = container

    def head(self) -> Any:
        return super().head(), events_in_table(self.container)

    def caught_up(self) -> None:
        """The projection takes every accepted event, raising no alarm."""
        ProjectionRunner(self.container).catch_up()
        assert self.container.alarms.active() == []

    def replayed(self, **body: Any) -> dict[str, Any]:
        response = self.client.post("/v1/replays", json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


def events_in_table(container: Container) -> int:
    dialect = container.store.dialect
    with dialect.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT count(*) AS n FROM {dialect.events_table}")
        return int(cursor.fetchone()["n"])


@pytest.fixture(scope="module", params=BACKENDS)
def boundary(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Boundary]:
    """One recorded world per backend, and an admin key (appends, replays, webhooks)."""
    folder = tmp_path_factory.mktemp("boundary")
    with database_for(request.param, folder) as url:
        container = bootstrap(Settings(database_url=url, auth="enabled", log_format="console",
                                       signing_key_file=str(folder / "key.pem")))
        try:
            admin = {"Authorization": "Bearer " + KeyRing(container.store).create(Role.ADMIN)[1]}
            with TestClient(create_app(container=container, workers=False)) as client:
                record_world(client, admin)
                yield Boundary(client, admin, container)
        finally:
            container.close()


# Every way in ----------------------------------------------------------------------------------

WAYS = ["single", "batch", "what-if"]


def refuse_every_way(boundary: Boundary, way: str, collection: str, body: str,
                     field_locs: list[Loc]) -> dict[str, Any]:
    """Send a create body (as JSON text) as a single append, as line 1 of a batch, or as the
    first hypothetical record of a replay; each must be refused naming the same fields."""
    line = f'{{"type": "{collection}", "body": {body}}}'
    if way == "single":
        return boundary.raw(f"/v1/{collection}", body.encode(),
                            locs=[("body", *loc) for loc in field_locs])
    if way == "batch":
        return boundary.raw("/v1/events:batch", line.encode(), headers=NDJSON_TYPE,
                            locs=[("body", 1, "body", *loc) for loc in field_locs])
    return boundary.raw("/v1/replays", f'{{"hypothetical": [{line}]}}'.encode(),
                        locs=[("body", "hypothetical", 1, "body", *loc) for loc in field_locs])


def with_field(body: dict[str, Any], field: str, literal: str) -> str:
    """`body` as JSON text with `field` set to `literal`, written as it comes."""
    text = json.dumps({**body, field: "\u0001placeholder"})
    return text.replace(json.dumps("\u0001placeholder"), literal)


# Dates -----------------------------------------------------------------------------------------

PAST_THE_BOUNDS = ["9999-12-31", "2201-01-01", "1899-12-31", "0001-01-01"]


class TestDates:
    @pytest.mark.parametrize("day", PAST_THE_BOUNDS)
    @pytest.mark.parametrize("way", WAYS)
    def test_a_shipment_outside_1900_to_2200_is_refused_every_way(self, boundary, way, day):
        body = refuse_every_way(boundary, way, "shipments",
                                json.dumps({**SHIPMENT, "id": "s-far", "shipped_on": day}),
                                [("shipped_on",)])
        assert body["errors"][0]["type"] in {"less_than_equal", "greater_than_equal"}

    @pytest.mark.parametrize("way", WAYS)
    def test_a_processing_activity_ending_in_9999_is_refused_every_way(self, boundary, way):
        refuse_every_way(boundary, way, "processing-activities",
                         json.dumps({**ACTIVITY, "id": "a-far", "ends_on": "9999-12-31"}),
                         [("ends_on",)])

    @pytest.mark.parametrize(("path", "body", "field"), [
        ("/v1/leases", {**LEASE, "id": "l-far"}, "ends_on"),
        ("/v1/licences", {**LICENCE, "id": "lic-far"}, "valid_to"),
        ("/v1/regulations", {**H20_RULE, "id": "r-far"}, "compliance_from"),
        ("/v1/leases/lease-ali-johor/amendments", {"effective_from": "2025-05-01"}, "ends_on"),
        ("/v1/leases/lease-ali-johor/due-diligence", {"reference": "DD-1"}, "completed_on"),
        ("/v1/regulations/us-bis-h20-2025/rescission", {}, "effective_from"),
        ("/v1/processing-activities/ft-bank-sg/corrections", {}, "ends_on"),
    ])
    @pytest.mark.parametrize("day", ["9999-12-31", "1899-12-31"])
    def test_every_date_field_has_the_same_bounds(self, boundary, path, body, field, day):
        boundary.post(path, {**body, field: day}, locs=[("body", field)])

    def test_the_first_and_last_days_are_accepted_projected_and_replayed(self, boundary):
        boundary.accepted("/v1/shipments", {**SHIPMENT, "id": "s-last",
                                            "shipped_on": "2200-12-31"})
        boundary.accepted("/v1/processing-activities", {**ACTIVITY, "id": "a-last",
                                                        "ends_on": "2200-12-31"})
        boundary.accepted("/v1/leases", {**LEASE, "id": "l-longest", "starts_on": "1900-01-01",
                                         "ends_on": "2200-12-31"})
        boundary.caught_up()
        for day in ("1900-01-01", "2200-12-31"):
            assert boundary.replayed(as_of=day)["consistent_with_projections"] is True


# Characters ------------------------------------------------------------------------------------

TEXT_FIELDS = [
    ("/v1/firms", {**ALIBABA, "id": "f-ctl"}, "name"),
    ("/v1/regulations", {**H20_RULE, "id": "r-ctl"}, "citation"),
    ("/v1/shipments", {**SHIPMENT, "id": "s-ctl"}, "exporter"),
    ("/v1/chip-models", {**H100, "id": "c-ctl"}, "vendor"),
    ("/v1/leases/lease-ali-johor/due-diligence", {"completed_on": "2025-05-01"}, "reference"),
    ("/v1/leases/lease-ali-johor/termination", {"effective_from": "2025-06-01"}, "reason"),
]
# NUL, other C0 controls, DEL, a C1 control, the line separator, a lone surrogate
NOT_TEXT = ["A\x00B", "\x00", "A\x01", "A\x1bB", "A\x7fB", "A\x85B", "A\u2028B", "A\ud800B"]


class TestCharacters:
    @pytest.mark.parametrize("text", NOT_TEXT)
    @pytest.mark.parametrize(("path", "body", "field"), TEXT_FIELDS)
    def test_a_control_character_in_any_text_is_refused(self, boundary, path, body, field,
                                                        text):
        boundary.raw(path, json.dumps({**body, field: text}).encode(), locs=[("body", field)])

    @pytest.mark.parametrize("way", WAYS)
    def test_a_nul_in_a_firm_name_is_refused_every_way(self, boundary, way):
        body = refuse_every_way(boundary, way, "firms",
                                json.dumps({**ALIBABA, "id": "f-nul", "name": "Ali\x00baba"}),
                                [("name",)])
        assert body["errors"][0]["type"] == "control_character"
        assert "U+0000" in body["errors"][0]["msg"]

    @pytest.mark.parametrize("text", ["A\tB", "A\nB", "A\rB"])
    def test_a_name_keeps_no_tab_or_line_break(self, boundary, text):
        boundary.post("/v1/firms", {**ALIBABA, "id": "f-tab", "name": text},
                      locs=[("body", "name")])

    def test_free_text_keeps_tab_line_feed_and_carriage_return(self, boundary):
        reason = "filed late:\n\tthe registry\r\nwas down"
        boundary.accepted("/v1/firms/alibaba/corrections",
                          {"name": "Alibaba Group Holding", "reason": reason})
        boundary.caught_up()
        history = boundary.client.get("/v1/firms/alibaba/history", headers=boundary.headers)
        assert history.json()["events"][-1]["data"]["reason"] == reason

    def test_a_webhook_description_with_a_nul_is_refused(self, boundary):
        boundary.post("/v1/webhooks/endpoints",
                      {"url": "https://example.com/hook", "event_types": ["ledger.appended"],
                       "description": "ops\x00"}, locs=[("body", "description")])

    def test_a_line_separator_inside_a_batch_string_is_no_line_break(self, boundary):
        line = json.dumps({"type": "firms", "body": {**ALIBABA, "id": "f-ls",
                                                     "name": "A\u2028B"}}, ensure_ascii=False)
        boundary.raw("/v1/events:batch", line.encode(), headers=NDJSON_TYPE,
                     locs=[("body", 1, "body", "name")])


# Numbers ---------------------------------------------------------------------------------------

NOT_FINITE = ["Infinity", "-Infinity", "NaN", "1e400", "-1e400", str(10**400),
              "1" + "0" * 5000, "1" + "0" * 5000 + ".5"]


class TestNumbers:
    @pytest.mark.parametrize("literal", NOT_FINITE)
    @pytest.mark.parametrize("way", WAYS)
    def test_a_tpp_that_is_not_a_finite_number_is_refused_every_way(self, boundary, way,
                                                                     literal):
        refuse_every_way(boundary, way, "chip-models",
                         with_field({**H100, "id": "c-inf"}, "tpp", literal), [("tpp",)])

    @pytest.mark.parametrize("way", WAYS)
    def test_a_quantity_of_5001_digits_is_refused_every_way(self, boundary, way):
        body = refuse_every_way(boundary, way, "shipments",
                                with_field({**SHIPMENT, "id": "s-huge"}, "quantity", "9" * 5001),
                                [("quantity",)])
        assert body["errors"][0]["type"] == "json_number_too_long"

    @pytest.mark.parametrize(("path", "body", "field", "value"), [
        ("/v1/shipments", {**SHIPMENT, "id": "s-big"}, "quantity", 10**12 + 1),
        ("/v1/leases", {**LEASE, "id": "l-big"}, "chip_count", 10**13),
        ("/v1/processing-activities", {**ACTIVITY, "id": "a-big"}, "subject_count", 10**19),
        ("/v1/chip-models", {**H100, "id": "c-big"}, "tpp", 1e9 * 1.0000001),
        ("/v1/chip-models", {**H100, "id": "c-big"}, "memory_bandwidth_gbps", 1e300),
    ])
    def test_numbers_past_their_maximum_are_refused(self, boundary, path, body, field, value):
        boundary.post(path, {**body, field: value}, locs=[("body", field)])

    def test_a_rule_threshold_past_its_maximum_is_refused(self, boundary):
        rule = {"kind": "export_licence", "chips": {"any_of": [{"min_tpp": 1e10}]},
                "licence_authority": "US-BIS"}
        body = boundary.post("/v1/regulations", {**H20_RULE, "id": "r-big", "rule": rule})
        assert locs_of(body)[0][-1] == "min_tpp"

    def test_the_maxima_themselves_are_accepted_and_projected(self, boundary):
        boundary.accepted("/v1/chip-models", {**H100, "id": "c-max", "tpp": 1e9,
                                              "performance_density": 1e9,
                                              "memory_bandwidth_gbps": 1e9})
        boundary.accepted("/v1/shipments", {**SHIPMENT, "id": "s-max", "quantity": 10**12,
                                            "chip_model": "c-max"})
        boundary.caught_up()
        export = boundary.client.get("/v1/exports", headers=boundary.headers)
        assert "Infinity" not in export.text


# JSON text -------------------------------------------------------------------------------------


class TestJsonText:
    @pytest.mark.parametrize("way", WAYS)
    def test_a_duplicate_key_is_refused_naming_it_every_way(self, boundary, way):
        body = refuse_every_way(
            boundary, way, "firms",
            '{"id": "f-dup", "name": "A", "hq_country": "SG", "id": "f-dup2"}', [("id",)])
        assert body["errors"][0]["type"] == "duplicate_key"

    def test_a_duplicate_key_deep_in_a_rule_is_named(self, boundary):
        rule = '{"kind": "export_licence", "chips": {"models": ["nvidia-h20"], ' \
               '"models": ["nvidia-h100"]}, "licence_authority": "US-BIS"}'
        boundary.raw("/v1/regulations", with_field({**H20_RULE, "id": "r-dup"}, "rule",
                                                   rule).encode(),
                     locs=[("body", "rule", "chips", "models")])

    def test_a_duplicate_key_in_a_batch_line_itself_is_named(self, boundary):
        line = '{"type": "firms", "type": "firms/changes", "id": "alibaba", ' \
               '"body": {"effective_from": "2025-01-01", "name": "B"}}'
        boundary.raw("/v1/events:batch", line.encode(), headers=NDJSON_TYPE,
                     locs=[("body", 1, "type")])

    def test_a_batch_line_nested_1000_deep_is_refused_naming_its_line(self, boundary):
        deep = '{"type": "firms", "body": ' + "[" * 1000 + "]" * 1000 + "}"
        body = boundary.raw("/v1/events:batch", f"{json.dumps({'type': 'firms', 'body': ALIBABA})}"
                            f"\n{deep}".encode(), headers=NDJSON_TYPE, locs=[("body", 2)])
        assert body["errors"][0]["type"] == "json_too_deep"

    @pytest.mark.parametrize("path", ["/v1/firms", "/v1/replays"])
    def test_a_body_nested_1000_deep_is_refused(self, boundary, path):
        boundary.raw(path, b'{"hypothetical": ' + b"[" * 1000 + b"]" * 1000 + b"}",
                     locs=[("body",)])

    def test_invalid_utf8_in_a_batch_is_refused_naming_its_line(self, boundary):
        good = json.dumps({"type": "firms", "body": {**ALIBABA, "id": "f-good"}}).encode()
        bad = b'{"type": "firms", "body": {"id": "f-u8", "name": "Ali\xffbaba", ' \
              b'"hq_country": "CN"}}'
        body = boundary.raw("/v1/events:batch", good + b"\n" + bad, headers=NDJSON_TYPE,
                            locs=[("body", 2)])
        assert "UTF-8" in body["errors"][0]["msg"]
        problem_of(boundary.client.get("/v1/firms/f-good", headers=boundary.headers), 404)

    def test_a_hypothetical_that_is_no_object_is_named_by_its_place_from_1(self, boundary):
        good = {"type": "firms", "body": {**ALIBABA, "id": "f-what-if"}}
        boundary.post("/v1/replays", {"hypothetical": [good, 5]},
                      locs=[("body", "hypothetical", 2)])

    def test_invalid_utf8_in_a_single_append_is_refused(self, boundary):
        boundary.raw("/v1/firms", b'{"id": "f-u8", "name": "Ali\xc3(", "hq_country": "CN"}',
                     locs=[("body",)])


# Content types ---------------------------------------------------------------------------------

JSON_ROUTES = [
    ("/v1/firms", {**ALIBABA, "id": "f-ct"}),
    ("/v1/leases/lease-ali-johor/amendments", {"effective_from": "2025-05-01",
                                               "chip_count": 10}),
    ("/v1/replays", {}),
    ("/v1/webhooks/endpoints", {"url": "https://example.com/h",
                                "event_types": ["ledger.appended"]}),
]


class TestContentTypes:
    @pytest.mark.parametrize("media", ["text/plain", "application/x-ndjson",
                                       "application/x-www-form-urlencoded",
                                       "application/json; charset=latin-1", None])
    @pytest.mark.parametrize(("path", "body"), JSON_ROUTES)
    def test_json_routes_take_only_application_json(self, boundary, path, body, media):
        boundary.raw(path, json.dumps(body).encode(), 415,
                     headers={"Content-Type": media} if media else {})

    @pytest.mark.parametrize("media", ["text/plain", "application/json",
                                       "application/x-ndjson; charset=utf-16"])
    def test_a_batch_takes_only_ndjson(self, boundary, media):
        line = json.dumps({"type": "firms", "body": {**ALIBABA, "id": "f-ct"}}).encode()
        boundary.raw("/v1/events:batch", line, 415, headers={"Content-Type": media})

    def test_json_is_taken_with_any_case_and_a_utf8_charset(self, boundary):
        response = boundary.client.post(
            "/v1/firms", content=json.dumps({**ALIBABA, "id": "f-utf8"}).encode(),
            headers={**boundary.headers, "Content-Type": 'Application/JSON; charset="UTF-8"'})
        assert response.status_code == 201, response.text


# If-Match, through a real server (a test client would re-encode the header) -------------------


@pytest.fixture(scope="module")
def served(boundary: Boundary) -> Iterator[str]:
    """The same app on a real uvicorn server (its lifespan already run by the test client)."""
    server = uvicorn.Server(uvicorn.Config(boundary.client.app, host="127.0.0.1", port=0,
                                           lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        thread.join(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class TestIfMatch:
    @pytest.mark.parametrize("value", [b"\xb2", b'"\xb3"', b"9" * 5000, b"\xef\xbc\x91"])
    def test_an_if_match_that_is_not_ascii_digits_is_a_422(self, boundary, served, value):
        before = boundary.head()
        response = httpx.post(f"{served}/v1/leases/lease-ali-johor/amendments",
                              json={"effective_from": "2025-05-01", "chip_count": 10},
                              headers={**boundary.headers, "If-Match": value})
        body = problem_of(response, 422)
        assert locs_of(body) == [("header", "If-Match")]
        assert boundary.head() == before


# chipledger import and replay --hypothetical ---------------------------------------------------


def run_cli(boundary: Boundary, *args: str) -> Any:
    settings = boundary.container.settings
    result = CliRunner().invoke(chipledger, list(args), env={
        "CHIPLEDGER_DATABASE_URL": settings.database_url,
        "CHIPLEDGER_SIGNING_KEY_FILE": str(settings.signing_key_file),
        "CHIPLEDGER_LOG_LEVEL": "warning"})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"crashed: {result.exception!r}\n{result.output}"
    return result


@pytest.mark.usefixtures("restore_logging")
class TestCommandLine:
    def test_import_refuses_invalid_utf8_naming_its_line(self, boundary, tmp_path):
        path = tmp_path / "world.ndjson"
        path.write_bytes(json.dumps({"type": "firms", "body": {**ALIBABA, "id": "f-cli"}})
                         .encode() + b'\n{"type": "firms", "body": {"id": "f-cli2", '
                                     b'"name": "\xfe", "hq_country": "CN"}}\n')
        before = boundary.head()
        result = run_cli(boundary, "import", str(path))
        assert result.exit_code == 1, result.output
        assert "line 2" in result.output
        assert "UTF-8" in result.output
        assert boundary.head() == before

    def test_replay_refuses_a_hypothetical_with_a_duplicate_key(self, boundary, tmp_path):
        path = tmp_path / "what-if.ndjson"
        path.write_text('{"type": "firms", "body": {"id": "f-w", "name": "A", "name": "B", '
                        '"hq_country": "CN"}}\n')
        result = run_cli(boundary, "replay", "--hypothetical", str(path))
        assert result.exit_code == 1, result.output
        assert "body.1.body.name" in result.output
        assert "more than once" in result.output
