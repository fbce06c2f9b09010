"""Hostile bodies on every append route, the batch and replays, on both backends (issue 11's
hostile-input suite; `test_schemathesis.py` is the other half).

Each request starts from a valid body of its route and is made hostile: NUL and other control
characters, lone surrogates, invalid UTF-8, huge and non-finite numbers, dates at and past the
bounds, deep nesting, duplicate keys, wrong content types, truncated, prefixed and oversize
bodies. Whatever the answer, it is never a 5xx; a refusal is application/problem+json (a 422
names a field for each error) and leaves the log's head and the events table as they were;
whatever is accepted, the projection takes without an alarm.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.app import create_app
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.runner import ProjectionRunner
from infra.settings import Settings
from tests.api.test_boundary import events_in_table
from tests.api.test_refusals import LATER_BODIES, MIB, problem_of
from tests.support.data import WORLD, record_world
from tests.support.databases import BACKENDS, database_for

JSON, NDJSON = "application/json", "application/x-ndjson"
KNOWN = {collection: body["id"] for collection, body in WORLD}


# JSON written as it comes: raw fragments, and objects from their pairs (duplicates and all) --


@dataclass(frozen=True)
class Raw:
    text: bytes


class Pairs(list[tuple[str, Any]]):
    pass


def render(value: Any) -> bytes:
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        value = Pairs(value.items())
    if isinstance(value, Pairs):
        return b"{" + b", ".join(json.dumps(k).encode() + b": " + render(v)
                                 for k, v in value) + b"}"
    if isinstance(value, list):
        return b"[" + b", ".join(render(v) for v in value) + b"]"
    return json.dumps(value).encode()  # ensure_ascii: a lone surrogate goes as \udxxx


# Hostile values -------------------------------------------------------------------------------

BAD_UTF8 = [b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"\x80"]
DAYS = ["1900-01-01", "2200-12-31", "1899-12-31", "2201-01-01", "9999-12-31", "0001-01-01",
        "2025-02-29", "2200-12-32", "+2025-01-01", "20250101", "2025-01-01\n", "2025-1-1"]
NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e-400", "-0", "1.0e+309",
           str(10**400), "9" * 5001, "1" + "0" * 5000 + ".5", str(2**63), str(2**64), "0"]


def nested(depth: int, opener: bytes = b"[", closer: bytes = b"]") -> Raw:
    return Raw(opener * depth + closer * depth)


strings = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),  # surrogates, controls too
    st.sampled_from(["\x00", "A\x00B", "\x01", "\x1b[31m", "\x7f", "\x85", "\u2028",
                     "\ud800", "\udfff", "A\ud83dB", "\ufeff", "x" * 3000, " ", ""]),
    st.builds(lambda a, bad, b: Raw(b'"' + a.encode() + bad + b.encode() + b'"'),
              st.text(max_size=5), st.sampled_from(BAD_UTF8), st.text(max_size=5)))
numbers = st.one_of(
    st.sampled_from([Raw(n.encode()) for n in NUMBERS]),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False))
depths = st.sampled_from([31, 32, 33, 1000, 100_000])
deep = st.one_of(depths.map(nested), depths.map(lambda d: Raw(b'{"a": ' * d + b"1" +
                                                               b"}" * d)))
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) |
                           st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)
hostile = st.one_of(strings, numbers, st.sampled_from(DAYS), deep, json_values)


@st.composite
def hostile_body(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """A valid body with one thing made hostile."""
    keys = sorted(base)
    key = draw(st.sampled_from(keys) | st.text(max_size=8))
    how = draw(st.sampled_from(["set", "set", "set", "duplicate", "drop", "whole", "nested"]))
    if how == "set":
        return {**base, key: draw(hostile)}
    if how == "duplicate":
        return Pairs([*base.items(), (key, draw(hostile | st.just(base.get(key))))])
    if how == "drop":
        return {k: v for k, v in base.items() if k != key}
    if how == "nested" and isinstance(base.get("rule"), dict):
        rule = base["rule"]
        return {**base, "rule": {**rule, draw(st.sampled_from(sorted(rule))): draw(hostile)}}
    return draw(hostile)


# Requests -------------------------------------------------------------------------------------


@dataclass
class Request:
    path: str
    content: bytes
    headers: dict[str, str]
    writes: bool = True  # a replay never writes, whatever it answers


def appends() -> list[tuple[str, str, str | None, dict[str, Any]]]:
    """Every append route: (path, batch type, batch id, a valid body)."""
    routes: list[tuple[str, str, str | None, dict[str, Any]]] = [
        (f"/v1/{collection}", collection, None, body) for collection, body in WORLD]
    routes += [(f"/v1/{collection}/{KNOWN[collection]}/{segment}", f"{collection}/{segment}",
                KNOWN[collection], body)
               for (collection, segment), body in LATER_BODIES.items()]
    return routes


ROUTES = appends()
CONTENT_TYPES = [None, "text/plain", "application/x-www-form-urlencoded",
                 "application/json; charset=latin-1", "multipart/form-data", ""]


@st.composite
def framed(draw: st.DrawFn, content: bytes, media: str) -> tuple[bytes, dict[str, str]]:
    """The body as sent: mostly as it is, with its media type; or cut short, prefixed,
    oversize, or sent as something else."""
    frame = draw(st.sampled_from(["as is"] * 6 + ["cut", "bom", "oversize", "media"]))
    headers = {"Content-Type": media}
    if frame == "cut":
        content = content[:draw(st.integers(0, max(len(content) - 1, 0)))]
    elif frame == "bom":
        content = b"\xef\xbb\xbf" + content
    elif frame == "oversize":
        content = content + b" " * (MIB + 1 - len(content))
    elif frame == "media":
        other = draw(st.sampled_from([*CONTENT_TYPES, NDJSON if media == JSON else JSON]))
        headers = {} if other is None else {"Content-Type": other}
    return content, headers


@st.composite
def append_request(draw: st.DrawFn) -> Request:
    path, _, _, base = draw(st.sampled_from(ROUTES))
    content, headers = draw(framed(render(draw(hostile_body(base))), JSON))
    if "/v1/" in path and path.count("/") > 3:
        headers |= draw(st.sampled_from([{}, {}, {"If-Match": "1"}, {"If-Match": "-1"},
                                         {"If-Match": "9" * 40}, {"If-Match": '"01"'},
                                         {"Idempotency-Key": "k" * 300}]))
    return Request(path, content, headers)


@st.composite
def batch_line(draw: st.DrawFn) -> bytes:
    _, kind, record_id, base = draw(st.sampled_from(ROUTES))
    line: dict[str, Any] = {"type": kind, "body": draw(hostile_body(base))}
    if record_id:
        line["id"] = record_id
    return render(draw(hostile_body(line)) if draw(st.booleans()) else line)


@st.composite
def batch_request(draw: st.DrawFn) -> Request:
    lines = draw(st.lists(batch_line(), min_size=1, max_size=3))
    good = render({"type": "firms", "body": {"id": "hostile-firm", "name": "H",
                                             "hq_country": "SG"}})
    separator = draw(st.sampled_from([b"\n", b"\r\n", b"\n\n", b"\r"]))
    content, headers = draw(framed(separator.join([good, *lines]), NDJSON))
    return Request("/v1/events:batch", content, headers)


@st.composite
def replay_request(draw: st.DrawFn) -> Request:
    body = {"as_of": draw(st.sampled_from(DAYS) | hostile),
            "hypothetical": [Raw(draw(batch_line())) for _ in range(draw(st.integers(0, 2)))]}
    content, headers = draw(framed(render(draw(hostile_body(body))), JSON))
    return Request("/v1/replays", content, headers, writes=False)


@st.composite
def webhook_request(draw: st.DrawFn) -> Request:
    base = {"url": "https://hooks.example.com/chipledger", "event_types": ["ledger.appended"],
            "description": "ops"}
    content, headers = draw(framed(render(draw(hostile_body(base))), JSON))
    return Request("/v1/webhooks/endpoints", content, headers)


requests = st.one_of(append_request(), append_request(), batch_request(), replay_request(),
                     webhook_request())


# The target -----------------------------------------------------------------------------------


class Target:
    def __init__(self, client: TestClient, headers: dict[str, str], container: Container
                 ) -> None:
        self.client, self.headers, self.container = client, headers, container

    def head(self) -> tuple[int, int]:
        response = self.client.get("/v1/integrity", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()["head_position"], events_in_table(self.container)

    def projects(self) -> None:
        ProjectionRunner(self.container).catch_up()
        assert self.container.alarms.active() == []


@pytest.fixture(scope="module", params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Target]:
    folder = tmp_path_factory.mktemp("hostile")
    with database_for(request.param, folder) as url:
        # Local webhook targets allowed: no name is resolved (this machine has no DNS); the
        # URL is still parsed and checked as the dispatcher would
        container = bootstrap(Settings(database_url=url, auth="enabled", log_format="json",
                                       log_level="warning", webhook_allow_local=True,
                                       signing_key_file=str(folder / "key.pem")))
        try:
            admin = {"Authorization": "Bearer " + KeyRing(container.store).create(Role.ADMIN)[1]}
            with TestClient(create_app(container=container, workers=False)) as client:
                record_world(client, admin)
                yield Target(client, admin, container)
        finally:
            container.close()


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example])
@given(hostile_request=requests)
def test_no_hostile_request_is_a_server_error_or_moves_the_head_when_refused(
        target, hostile_request):
    before = target.head()
    response = target.client.post(hostile_request.path, content=hostile_request.content,
                                  headers={**target.headers, **hostile_request.headers})
    where = f"{hostile_request.path} {hostile_request.headers} {hostile_request.content[:300]!r}"
    event(f"{hostile_request.path.split('/')[2]} answered {response.status_code}")
    assert response.status_code < 500, f"{where}\n{response.text}"
    if response.status_code >= 400 or not hostile_request.writes:
        if response.status_code >= 400:
            body = problem_of(response, response.status_code)
            for entry in body.get("errors", []):
                assert entry["loc"][0] in {"body", "header", "query", "path"}, entry
        assert target.head() == before, f"a refused request moved the head: {where}"
    else:
        target.projects()
