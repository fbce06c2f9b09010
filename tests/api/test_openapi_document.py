"""The served /openapi.json is a valid OpenAPI 3.1 document a client generator can trust:
every reference resolves, every operation has a stable operationId, a request body where it
takes one, its security and its problem+json answers."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from openapi_spec_validator import validate

from api.app import create_app
from infra.settings import Settings


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    url = f"sqlite:///{tmp_path_factory.mktemp('doc')}/doc.db"
    with TestClient(create_app(Settings(database_url=url), workers=False)) as client:
        return dict(client.get("/openapi.json").json())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m.upper(), p, op) for p, item in document["paths"].items() for m, op in item.items()]


def test_it_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_reference_resolves(document):
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        return [r for v in node for r in refs(v)] if isinstance(node, list) else []

    schemas = document["components"]["schemas"]
    found = refs(document)
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_operation_ids_are_stable_and_unique(document):
    ids = [op["operationId"] for _, _, op in operations(document)]
    assert len(set(ids)) == len(ids)
    assert document["paths"]["/v1/leases"]["post"]["operationId"] == "createLease"
    assert document["paths"]["/v1/firms/{firm_id}/posture"]["get"]["operationId"] == \
        "getFirmPosture"


def test_every_post_that_takes_a_body_declares_it(document):
    takes_none = {"/v1/integrity/verification", "/v1/integrity/checkpoints",
                  "/v1/webhooks/endpoints/{endpoint_id}/secret-rotation"}
    # Bodies not declared yet: the list may only shrink (a path that gains its body must leave).
    pending = {"/v1/integrity/cosignatures"}  # text/plain: a cosigned checkpoint note
    for method, path, op in operations(document):
        if method == "POST" and path not in takes_none:
            assert ("requestBody" in op) != (path in pending), path
    batch = document["paths"]["/v1/events:batch"]["post"]["requestBody"]["content"]
    assert "leases/amendments" in batch["application/x-ndjson"]["schema"]["properties"][
        "type"]["enum"]


def test_every_operation_states_its_security_and_problems(document):
    for method, path, op in operations(document):
        responses = op["responses"]
        assert "503" in responses, (method, path)
        if path not in {"/healthz", "/readyz"}:
            assert op["security"][0]["bearer"], (method, path)
            assert {"401", "403"} <= set(responses), (method, path)
        for status, answer in responses.items():
            if status[0] in "45":
                assert "application/problem+json" in answer["content"], (method, path, status)


def test_appends_document_their_headers_and_status(document):
    create = document["paths"]["/v1/leases"]["post"]
    assert {"Location", "Idempotent-Replayed"} <= set(create["responses"]["201"]["headers"])
    assert "Idempotency-Key" in {p["name"] for p in create["parameters"]}
    amend = document["paths"]["/v1/leases/{record_id}/amendments"]["post"]
    assert {"Idempotency-Key", "If-Match"} <= {p["name"] for p in amend["parameters"]}
    assert "412" in amend["responses"]
    assert "201" in document["paths"]["/v1/events:batch"]["post"]["responses"]
    assert "201" in document["paths"]["/v1/webhooks/endpoints"]["post"]["responses"]
