"""The event catalog (issue 18, item 5): GET /v1/webhooks/event-types lists every type with
its JSON Schema and an example, GET /v1/webhooks/asyncapi.json is an AsyncAPI 3.0 document
of the same messages; real deliveries of every type validate against them. On SQLite and
PostgreSQL, with a real receiver."""

from collections.abc import Callable
from typing import Any

import jsonschema_rs
import pytest

from tests.support.data import WORLD, record_world
from tests.support.webhooks import Api, Pump, Receiver, Reply

TYPES = ["posture.changed", "residency.changed", "ledger.appended", "endpoint.disabled",
         "endpoint.circuit_opened"]


@pytest.fixture
def hook_update() -> dict[str, Any]:
    return {"webhook_breaker_failures": 2, "webhook_breaker_cooldown": 60.0}


def validator(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for(schema, validate_formats=True)


def test_the_catalog_lists_every_type_with_a_schema_its_example_meets(api: Api) -> None:
    answer = api.client.get("/v1/webhooks/event-types", headers=api.writer)
    assert answer.status_code == 200, answer.text
    listed = answer.json()["event_types"]
    assert [t["type"] for t in listed] == TYPES
    for entry in listed:
        schema = entry["schema"]
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema_rs.meta.validate(schema)
        validator(schema).validate(entry["example"])
        # Not vacuous: another type's example, or one missing a field, is refused.
        assert not validator(schema).is_valid({**entry["example"], "type": "other"})
        data = dict(entry["example"]["data"])
        data.pop(next(iter(data)))
        assert not validator(schema).is_valid({**entry["example"], "data": data})
    assert api.client.get("/v1/webhooks/event-types").status_code == 401


def test_the_asyncapi_document_describes_the_same_messages(api: Api) -> None:
    answer = api.client.get("/v1/webhooks/asyncapi.json", headers=api.writer)
    assert answer.status_code == 200, answer.text
    document = answer.json()
    assert document["asyncapi"] == "3.0.0"
    listed = {t["type"]: t for t in api.client.get(
        "/v1/webhooks/event-types", headers=api.writer).json()["event_types"]}
    messages = document["components"]["messages"]
    assert sorted(m["name"] for m in messages.values()) == sorted(TYPES)
    for message in messages.values():
        assert message["payload"] == listed[message["name"]]["schema"]
        for example in message["examples"]:
            validator(message["payload"]).validate(example["payload"])
    [operation] = document["operations"].values()
    assert operation["action"] == "send"
    refs = {r["$ref"].rsplit("/", 1)[1] for r in operation["messages"]}
    assert refs == set(document["channels"]["endpoint"]["messages"]) == set(messages)


def test_every_delivered_payload_validates_against_its_schema(
    api: Api, pump: Pump, receivers: Callable[[], Receiver]
) -> None:
    receiver, failing, doomed = receivers(), receivers(), receivers()
    failing.default = Reply(503)
    watching = api.endpoint(receiver.url, tuple(TYPES))
    receiver.secrets = [watching["secret"]]
    api.endpoint(failing.url, ("ledger.appended",))
    gone = api.endpoint(doomed.url, ("ledger.appended",))["id"]
    # The story: posture and residency changes, an append each record; the failing
    # receiver's circuit opens; the doomed endpoint is disabled.
    record_world(api.client, api.writer)
    pump.until(lambda: any(a.payload["type"] == "endpoint.circuit_opened"
                           for a in receiver.arrivals))
    assert api.client.delete(f"/v1/webhooks/endpoints/{gone}",
                             headers=api.admin).status_code == 200
    pump.until(lambda: {a.payload["type"] for a in receiver.arrivals} == set(TYPES))
    schemas = {t["type"]: validator(t["schema"]) for t in api.client.get(
        "/v1/webhooks/event-types", headers=api.writer).json()["event_types"]}
    for arrival in receiver.arrivals:
        assert arrival.verified_by
        schemas[arrival.payload["type"]].validate(arrival.payload)
    assert sum(a.payload["type"] == "ledger.appended" for a in receiver.arrivals) >= len(WORLD)
