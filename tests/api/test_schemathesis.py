"""Schemathesis against the real ASGI app, with a real API key, on both backends: whatever it
generates from the OpenAPI document, valid or not, no request is answered 5xx (issue 11's
hostile-input suite; `test_hostile_inputs.py` is the other half).

Every operation of the document is a test of its own on each backend, drawing cases from
schemathesis' strategies (positive and negative, and with the path naming a record that
exists) for a bounded number of examples. Its pytest plugin is not used: its lazy schemas
break on pytest 9.2 (`Function._nodeid` is gone).

Every request body is in the document now (issue 13), `events:batch` as NDJSON, which the
serializer below writes; `readable` still moves any body's `$defs` to `components/schemas` (in
this test's copy only) so that a document with inline definitions stays readable.
"""

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.modes import GenerationMode
from schemathesis.python.asgi import ASGIClient

from api.app import create_app
from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from tests.support.data import WORLD, record_world
from tests.support.databases import BACKENDS, database_for

EXAMPLES = 25  # per operation and backend: about 3,000 requests in all


def readable(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each body's `$defs` moved to `components/schemas`."""
    document = copy.deepcopy(document)
    shared = document.setdefault("components", {}).setdefault("schemas", {})
    for operations in document["paths"].values():
        for operation in operations.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                shared.update(media["schema"].pop("$defs", {}))
    text = json.dumps(document).replace('"#/$defs/', '"#/components/schemas/')
    result: dict[str, Any] = json.loads(text)
    return result


@schemathesis.serializer("application/x-ndjson")
def ndjson(_: Any, value: Any) -> bytes:
    """`events:batch` bodies: one JSON value a line (a generated array is its lines, anything
    else one line), so schemathesis sends the batch what the document describes."""
    lines = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


# The document does not depend on the database: read it from an app that never starts.
SCHEMA = schemathesis.openapi.from_dict(
    readable(create_app(Settings(database_url="sqlite:///never-opened.db")).openapi()),
    config=SchemathesisConfig.from_dict({"warnings": False}))
OPERATIONS = {op.label: op for op in (r.ok() for r in SCHEMA.get_all_operations())}
# A record of each collection in the recorded world, for paths that name one.
KNOWN = {collection: body["id"] for collection, body in WORLD}


def known_path(path: str) -> dict[str, str]:
    """Path parameters naming a record that exists (the firm behind firm_id)."""
    collection = [*path.split("/"), "", ""][2]
    return {"record_id": KNOWN.get(collection, "alibaba"), "firm_id": "alibaba-sg",
            "endpoint_id": "wh-unknown"}


def cases(label: str) -> st.SearchStrategy[Any]:
    operation = OPERATIONS[label]
    known = {name: value for name, value in known_path(operation.path).items()
             if "{" + name + "}" in operation.path}
    return st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                     operation.as_strategy(GenerationMode.NEGATIVE),
                     operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[ASGIClient, dict[str, str]]]:
    """The app on a recorded world, started by a test client's lifespan, and an admin key.
    Cases go through schemathesis' own ASGI client, which starts no second lifespan. The
    projection runner follows the log, so a `min_position` up to the head is reached."""
    folder = tmp_path_factory.mktemp("schemathesis")
    with database_for(request.param, folder) as url:
        container = bootstrap(Settings(database_url=url, auth="enabled", log_format="json",
                                       log_level="warning", poll_interval=0.05,
                                       signing_key_file=str(folder / "key.pem")))
        try:
            app = create_app(container=container)
            admin = {"Authorization": "Bearer " + KeyRing(container.store).create(Role.ADMIN)[1]}
            with TestClient(app) as client:
                record_world(client, admin)
                yield ASGIClient(app), admin
        finally:
            container.close()


@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_no_generated_request_is_answered_with_a_server_error(served, label):
    session, admin = served

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases(label))
    def no_server_error(case: Any) -> None:
        response = case.call_and_validate(session=session, base_url="http://testserver",
                                          headers=dict(admin), checks=[not_a_server_error])
        event(f"answered {response.status_code}")

    no_server_error()
