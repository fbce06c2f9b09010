"""Every route is guarded (api.md, Conventions: missing or unknown key 401, wrong role 403), keys
are stored hashed and never logged, the CLI makes working keys, and auth can be turned off
only loudly.

The route walk reads the app itself, so a route added later is covered (or, if unguarded and
not in PUBLIC, fails the test) without editing this file.
"""

import contextlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, routing
from fastapi.testclient import TestClient
from httpx import Response
from structlog.testing import capture_logs

from api.app import create_app
from infra.bootstrap import Container, bootstrap
from infra.keys import GRANTS, KEY_PREFIX, KeyRing, Permission, Role, digest
from infra.logging import configure_logging
from infra.settings import Settings
from tests.support.data import ALIBABA

# The docs and their assets answer without a key (CHIPLEDGER_DOCS=off serves none of them).
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/assets", "/redoc"}
CLI = Path(sys.executable).parent / "chipledger"  # the one installed beside this Python
KEY_SHAPE = re.compile(r"clk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")
PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")
SAMPLE_ID = "x1"


@dataclass(frozen=True)
class Endpoint:
    path: str
    methods: tuple[str, ...]
    permissions: frozenset[Permission]

    @property
    def url(self) -> str:
        """The path with every parameter filled with a valid id."""
        return PATH_PARAM.sub(SAMPLE_ID, self.path)

    def admits(self, role: Role) -> bool:
        return self.permissions <= GRANTS[role]


def _required_permissions(dependant: Any, seen: set[int] | None = None) -> set[Permission]:
    """Every `required_permission` on the dependency tree (api.auth.require marks its check)."""
    seen = set() if seen is None else seen
    found: set[Permission] = set()
    if dependant is None or id(dependant) in seen:
        return found
    seen.add(id(dependant))
    permission = getattr(getattr(dependant, "call", None), "required_permission", None)
    if permission is not None:
        found.add(Permission(permission))
    for sub in getattr(dependant, "dependencies", None) or []:
        found |= _required_permissions(sub, seen)
    return found


def _routes(app: FastAPI) -> Iterator[tuple[Any, list[Any]]]:
    """Each route with the dependants that guard it. FastAPI 0.165+ keeps included routers as
    branches; `iter_route_contexts` flattens them (with router-level dependencies)."""
    iterate = getattr(routing, "iter_route_contexts", None)
    if iterate is None:
        for route in app.routes:
            yield route, [getattr(route, "dependant", None)]
        return
    for context in iterate(app.routes):
        route = context.original_route
        dependants = [getattr(route, "dependant", None)]
        with contextlib.suppress(AttributeError):
            dependants.append(context.dependant)
        yield route, dependants


def endpoints(app: FastAPI) -> tuple[list[Endpoint], list[Endpoint]]:
    """(guarded, unguarded): every route of the app, by whether it requires a permission."""
    guarded, unguarded = [], []
    for route, dependants in _routes(app):
        path = getattr(route, "path", None)
        assert isinstance(path, str), f"a route without a path: {route!r}"
        if path == "/ui" or path.startswith("/ui/"):
            continue  # the workbench: session-guarded, walked in tests/api/workbench/
        methods = tuple(sorted(set(getattr(route, "methods", None) or {"GET"}) - {"HEAD"}))
        permissions: set[Permission] = set()
        for dependant in dependants:
            permissions |= _required_permissions(dependant)
        endpoint = Endpoint(path, methods, frozenset(permissions))
        (guarded if permissions else unguarded).append(endpoint)
    return guarded, unguarded


def call(client: TestClient, method: str, url: str, headers: dict[str, str]) -> Response:
    return client.request(method, url, headers=headers)


def assert_problem(response: Response, status: int, what: str) -> None:
    assert response.status_code == status, f"{what}: {response.status_code} {response.text}"
    assert response.headers["content-type"].startswith("application/problem+json"), what
    body = response.json()
    assert body["status"] == status, what
    assert {"type", "title", "detail"} <= body.keys(), what
    if status == 401:
        assert response.headers.get("www-authenticate", "").lower().startswith("bearer"), what


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def app_and_keys(container: Container) -> Iterator[tuple[TestClient, dict[Role, str]]]:
    ring = KeyRing(container.store)
    keys = {role: ring.create(role, f"test-{role.value}")[1] for role in Role}
    with TestClient(create_app(container=container)) as client:
        yield client, keys


# The route walk --------------------------------------------------------------------------------


class TestEveryRoute:
    def test_only_the_public_routes_are_unguarded(self):
        guarded, unguarded = endpoints(create_app())
        assert {e.path for e in unguarded} == PUBLIC
        paths = {e.path for e in guarded}
        # The walk sees the routes (and their guards) it must: it is not vacuously empty.
        for path in ("/v1/firms", "/v1/leases/{record_id}/termination", "/v1/events:batch",
                     "/v1/firms/{record_id}", "/v1/events", "/v1/integrity",
                     "/v1/integrity/verification", "/v1/exports", "/metrics"):
            assert path in paths, path
        permissions = {p for e in guarded for p in e.permissions}
        assert {Permission.READ, Permission.WRITE, Permission.AUDIT} <= permissions

    def test_the_guards_match_the_contract(self):
        """Reads need read, appends write, verification and exports audit (api.md)."""
        guarded, _ = endpoints(create_app())
        by_route = {(e.path, m): e.permissions for e in guarded for m in e.methods}
        assert by_route[("/v1/firms", "POST")] == {Permission.WRITE}
        assert by_route[("/v1/events:batch", "POST")] == {Permission.WRITE}
        assert by_route[("/v1/leases/{record_id}/corrections", "POST")] == {Permission.WRITE}
        assert by_route[("/v1/firms/{record_id}", "GET")] == {Permission.READ}
        assert by_route[("/v1/integrity/verification", "POST")] == {Permission.AUDIT}
        assert by_route[("/v1/exports", "GET")] == {Permission.AUDIT}
        for (path, method), permissions in by_route.items():
            if method == "POST" and path.startswith("/v1/") and path.split("/")[2] in {
                    "chip-models", "firms", "data-centres", "regulations", "licences",
                    "leases", "shipments", "processing-activities"}:
                assert Permission.WRITE in permissions, (method, path)
            if method == "GET":
                assert Permission.WRITE not in permissions, (method, path)

    def test_every_guarded_route_refuses_missing_unknown_and_underprivileged_keys(
        self, app_and_keys
    ):
        client, keys = app_and_keys
        guarded, _ = endpoints(client.app)
        unknown_keys = [
            {},
            {"Authorization": ""},
            bearer(""),
            bearer(f"{KEY_PREFIX}deadbeef_{'A' * 43}"),
            bearer("not-an-api-key"),
            bearer(keys[Role.ADMIN].upper()),
            bearer(digest(keys[Role.ADMIN])),
            {"Authorization": f"Basic {keys[Role.ADMIN]}"},
            {"Authorization": keys[Role.ADMIN]},
        ]
        head = client.get("/v1/integrity", headers=bearer(keys[Role.READER])).json()
        checked = 0
        for endpoint in guarded:
            for method in endpoint.methods:
                what = f"{method} {endpoint.url}"
                for headers in unknown_keys:
                    assert_problem(call(client, method, endpoint.url, headers), 401,
                                   f"{what} with {headers or 'no header'}")
                for role in Role:
                    response = call(client, method, endpoint.url, bearer(keys[role]))
                    if endpoint.admits(role):
                        assert response.status_code not in (401, 403), \
                            f"{what} refused {role.value}: {response.text}"
                        assert response.status_code < 500, f"{what}: {response.text}"
                    else:
                        assert_problem(response, 403, f"{what} as {role.value}")
                checked += 1
        assert checked >= len(guarded)
        after = client.get("/v1/integrity", headers=bearer(keys[Role.READER])).json()
        assert after["head_position"] == head["head_position"]

    def test_each_role_gets_what_its_grants_say(self, app_and_keys):
        """The matrix of api.md: reader reads; writer appends; auditor verifies; admin all."""
        client, keys = app_and_keys
        for role in Role:
            response = client.post("/v1/firms", json={**ALIBABA, "id": f"firm-{role.value}"},
                                   headers=bearer(keys[role]))
            expected = 201 if role in (Role.WRITER, Role.ADMIN) else 403
            assert response.status_code == expected, (role, response.text)
        for role in Role:
            response = client.get("/v1/firms/firm-writer", headers=bearer(keys[role]))
            assert response.status_code == 200, (role, response.text)
            response = client.post("/v1/integrity/verification", headers=bearer(keys[role]))
            expected = 200 if role in (Role.AUDITOR, Role.ADMIN) else 403
            assert response.status_code == expected, (role, response.text)
            response = client.get("/v1/exports", headers=bearer(keys[role]))
            assert response.status_code == expected, (role, response.text)

    def test_public_routes_answer_without_a_key(self, client):
        for path in sorted(PUBLIC - {"/docs/assets"} | {"/docs/assets/swagger-ui.css"}):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
        assert client.get("/healthz").json() == {"status": "ok"}


# Keys at rest ----------------------------------------------------------------------------------


class TestKeysAtRest:
    def test_keys_are_stored_hashed(self, container, database_url):
        ring = KeyRing(container.store)
        created = [ring.create(role, f"stored-{role.value}") for role in Role]
        with container.store.dialect.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT * FROM {container.store.dialect.api_keys_table}")
            rows = [{name: row[name] for name in row.keys()}  # noqa: SIM118 - sqlite3.Row
                    for row in cursor.fetchall()]
        assert len(rows) == len(created)
        stored = [str(value) for row in rows for value in row.values()]
        for key_id, key in created:
            secret = key.removeprefix(f"{KEY_PREFIX}{key_id}_")
            assert len(secret) >= 40
            assert not any(key in value or secret in value for value in stored), key_id
            assert digest(key) in stored  # SHA-256, so a lookup needs the key itself
            assert ring.authenticate(key) is not None
            assert ring.authenticate(digest(key)) is None
        if database_url.startswith("sqlite:///"):
            path = Path(database_url.removeprefix("sqlite:///"))
            files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
            assert files
            everything = b"".join(p.read_bytes() for p in files)
            for _, key in created:
                assert key.encode() not in everything
                assert key.split("_", 2)[2].encode() not in everything
                assert digest(key).encode() in everything

    def test_the_stored_hash_is_not_a_key(self, app_and_keys):
        client, keys = app_and_keys
        for key in keys.values():
            assert client.get("/v1/integrity", headers=bearer(key)).status_code == 200
            response = client.get("/v1/integrity", headers=bearer(digest(key)))
            assert_problem(response, 401, "the digest used as a key")


# The command line ------------------------------------------------------------------------------


class TestKeysCreateCommand:
    def test_keys_create_prints_the_key_alone_on_its_last_line(self, client, database_url,
                                                               tmp_path):
        env = {name: value for name, value in os.environ.items()
               if not name.startswith("CHIPLEDGER_")}
        env |= {"CHIPLEDGER_DATABASE_URL": database_url, "CHIPLEDGER_LOG_FORMAT": "json"}
        done = subprocess.run([str(CLI), "keys", "create", "--role", "reader", "--name", "ci"],
                              env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines, done.stderr
        key = lines[-1]
        assert KEY_SHAPE.fullmatch(key), repr(key)
        assert done.stdout.count(key) == 1
        assert key not in done.stderr
        assert key.split("_", 2)[2] not in done.stderr

        # The key works against an app on the same database, with the reader's rights only.
        response = client.get("/v1/integrity", headers=bearer(key))
        assert response.status_code == 200, response.text
        response = client.post("/v1/firms", json=ALIBABA, headers=bearer(key))
        assert_problem(response, 403, "a reader key appending")
        response = client.get("/v1/integrity", headers=bearer(key[:-1] + "x"))
        assert_problem(response, 401, "a key one character off")


# Auth turned off -------------------------------------------------------------------------------


def _start_logged(settings: Settings) -> tuple[Container, list[dict[str, Any]]]:
    container = bootstrap(settings)
    with capture_logs() as logs, TestClient(create_app(container=container)):
        pass
    return container, logs


class TestAuthDisabled:
    def test_every_route_is_admitted_and_the_start_warns(self, database_url, tmp_path):
        container = bootstrap(Settings(database_url=database_url, auth="disabled",
                                       log_format="console",
                                       signing_key_file=str(tmp_path / "key.pem")))
        try:
            with capture_logs() as logs, TestClient(create_app(container=container)) as client:
                guarded, _ = endpoints(client.app)
                assert guarded
                for endpoint in guarded:
                    for method in endpoint.methods:
                        for headers in ({}, bearer("not-an-api-key")):
                            response = call(client, method, endpoint.url, headers)
                            assert response.status_code not in (401, 403), \
                                f"{method} {endpoint.url}: {response.text}"
                            assert response.status_code < 500, response.text
                created = client.post("/v1/firms", json=ALIBABA)
                assert created.status_code == 201, created.text
        finally:
            container.close()
        warnings = [e for e in logs if e.get("event") == "auth_disabled"]
        assert warnings, [e.get("event") for e in logs]
        assert all(e["log_level"] == "warning" for e in warnings)
        assert "disabled" in warnings[0]["detail"].lower()

    def test_with_auth_enabled_the_start_does_not_warn(self, database_url, tmp_path):
        container, logs = _start_logged(Settings(database_url=database_url, auth="enabled",
                                                 log_format="console",
                                                 signing_key_file=str(tmp_path / "key.pem")))
        container.close()
        assert "api_started" in [e.get("event") for e in logs]
        assert "auth_disabled" not in [e.get("event") for e in logs]


# Keys in logs ----------------------------------------------------------------------------------


def _requests_carrying(client: TestClient, keys: dict[Role, str], *, misplaced: bool) -> None:
    """Requests that carry keys: admitted, refused, unknown, wrong scheme; with `misplaced`,
    also keys where they do not belong (path, query, request id), as clients get it wrong."""
    admin, reader = keys[Role.ADMIN], keys[Role.READER]
    assert client.get("/v1/integrity", headers=bearer(admin)).status_code == 200
    assert client.post("/v1/firms", json={**ALIBABA, "id": "logged"},
                       headers=bearer(admin)).status_code == 201
    assert client.post("/v1/firms", json={"id": "Bad"}, headers=bearer(admin)).status_code == 422
    assert client.post("/v1/firms", json=ALIBABA, headers=bearer(reader)).status_code == 403
    assert client.get("/v1/integrity", headers=bearer(admin + "x")).status_code == 401
    assert client.get("/v1/integrity",
                      headers={"Authorization": f"Basic {admin}"}).status_code == 401
    if misplaced:
        assert client.get(f"/v1/firms/{admin}", headers=bearer(reader)).status_code == 404
        assert client.get("/v1/integrity", params={"api_key": admin},
                          headers=bearer(reader)).status_code == 200
        assert client.get("/v1/integrity", headers={**bearer(reader),
                                                    "X-Request-ID": admin}).status_code == 200


def _assert_no_key(text: str, keys: dict[Role, str]) -> None:
    assert text, "nothing was logged: the check would be vacuous"
    for key in keys.values():
        secret = key.split("_", 2)[2]
        assert key not in text
        assert secret not in text


class TestKeysInLogs:
    def test_keys_never_appear_in_a_request_log(self, app_and_keys, capsys, caplog):
        client, keys = app_and_keys
        capsys.readouterr()
        with caplog.at_level(logging.DEBUG):
            _requests_carrying(client, keys, misplaced=False)
        captured = capsys.readouterr()
        _assert_no_key(captured.out + captured.err + caplog.text, keys)
        assert "request" in captured.out + captured.err + caplog.text

    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_keys_never_appear_in_the_configured_logs(self, app_and_keys, capsys, caplog,
                                                      restore_logging, fmt):
        client, keys = app_and_keys
        configure_logging(fmt, "debug")
        capsys.readouterr()
        with caplog.at_level(logging.DEBUG):
            _requests_carrying(client, keys, misplaced=True)
        captured = capsys.readouterr()
        logged = captured.out + captured.err
        _assert_no_key(logged + caplog.text, keys)
        # The request lines were written, with the key's id (not the key) for attribution.
        assert "/v1/integrity" in logged
        admin_id = keys[Role.ADMIN].split("_")[1]
        assert admin_id in logged


# Verified keys are trusted for a few seconds ----------------------------------------------------


def _revoke(container: Container, key: str) -> None:
    dialect = container.store.dialect
    with dialect.transaction(commit=True) as cursor:
        cursor.execute(dialect.sql(f"UPDATE {dialect.api_keys_table} SET revoked_at = "
                                   "created_at WHERE key_hash = %s"), (digest(key),))


class TestVerifiedKeyCache:
    def test_a_verified_key_is_trusted_until_its_time_is_up(self, container, monkeypatch):
        ring = KeyRing(container.store, ttl=5)
        _, key = ring.create(Role.WRITER, "cached")
        assert ring.recently_verified(key) is None  # never verified: ask the database
        principal = ring.authenticate(key)
        assert principal is not None
        assert ring.recently_verified(key) == principal
        _revoke(container, key)
        assert ring.recently_verified(key) == principal  # within the time: still trusted
        now = time.monotonic()
        monkeypatch.setattr("infra.keys._clock", lambda: now + 6)
        assert ring.recently_verified(key) is None  # past it: the database again, which
        assert ring.authenticate(key) is None  # refuses the revoked key
        assert ring.recently_verified(key) is None

    def test_only_valid_keys_are_kept_and_never_the_key_itself(self, container):
        ring = KeyRing(container.store)
        _, key = ring.create(Role.READER)
        unknown = key[:-4] + "xxxx"
        assert ring.authenticate(unknown) is None
        assert ring.recently_verified(unknown) is None
        assert ring.authenticate(key) is not None
        assert list(ring._verified) == [digest(key)]

    def test_requests_reuse_a_verified_key_without_reading_it_again(self, app_and_keys,
                                                                   container, monkeypatch):
        client, keys = app_and_keys
        reads = []
        keys_table = client.app.state.keyring.keys
        find = keys_table.find
        monkeypatch.setattr(keys_table, "find",
                            lambda key_hash: reads.append(key_hash) or find(key_hash))
        for n in range(3):
            response = client.post("/v1/firms", headers=bearer(keys[Role.WRITER]),
                                   json={"id": f"cached-{n}", "name": "C", "hq_country": "SG"})
            assert response.status_code == 201, response.text
        assert reads == [digest(keys[Role.WRITER])]
        # A cached key still answers only for its role.
        assert_problem(client.post("/v1/firms", headers=bearer(keys[Role.READER]),
                                   json={"id": "r", "name": "R", "hq_country": "SG"}),
                       403, "a reader appending")

    def test_a_revoked_key_is_refused_once_its_time_is_up(self, app_and_keys, container,
                                                          monkeypatch):
        client, keys = app_and_keys
        headers = bearer(keys[Role.READER])
        assert client.get("/v1/integrity", headers=headers).status_code == 200
        _revoke(container, keys[Role.READER])
        now = time.monotonic()
        monkeypatch.setattr("infra.keys._clock", lambda: now + 60)
        assert_problem(client.get("/v1/integrity", headers=headers), 401, "a revoked key")
