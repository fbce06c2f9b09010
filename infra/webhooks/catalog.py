"""The event catalog: every message type a webhook can carry, with the JSON Schema (2020-12)
of what is delivered (`{type, timestamp, data}`) and an example, and the same as an AsyncAPI
3.0 document. The schemas are checked against real deliveries in the tests."""

from typing import Any

from domain.types import Status
from infra.webhooks.operations import CIRCUIT_OPENED, ENDPOINT_DISABLED
from projections.outbox import LEDGER_APPENDED, POSTURE_CHANGED, RESIDENCY_CHANGED

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_TIME = {"type": "string", "format": "date-time"}
_DATE = {"type": "string", "format": "date"}
_STATUS = {"type": "string", "enum": [s.value for s in Status]}
_POSITION = {"type": "integer", "minimum": 1}


def _object(properties: dict[str, Any], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": properties,
            "required": [p for p in properties if p not in optional]}


_STATUS_CHANGE = {
    "firm_id": {"type": "string"}, "as_of": _DATE,
    "as_of_until": {"anyOf": [_DATE, {"type": "null"}],
                    "description": "the first date the change no longer covers; null: open"},
    "previous_status": _STATUS, "status": _STATUS,
    "restatement": {"type": "boolean",
                    "description": "true when the change concerns dates before it was known"},
    "known_at": _TIME, "position": _POSITION}
_PROCESSING = _object({"activity_id": {"type": "string"},
                       "data_subject_country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                       "processed_in": {"type": ["string", "null"]}})
_ENDPOINT = {"endpoint_id": {"type": "string"}, "url": {"type": "string", "format": "uri"},
             "description": {"type": ["string", "null"]}}
_LOGGED = _object({"position": _POSITION, "kind": {"type": "string"},
                   "record_id": {"type": "string"}, "type": {"type": "string"}})

DATA: dict[str, tuple[str, dict[str, Any]]] = {
    POSTURE_CHANGED: ("A firm's export-control posture changed over a span of dates.",
                      _object(_STATUS_CHANGE)),
    RESIDENCY_CHANGED: ("A firm's data-residency status changed, or a processing activity "
                        "started somewhere.",
                        _object({**_STATUS_CHANGE, "processing": _PROCESSING},
                                optional=("processing",))),
    LEDGER_APPENDED: ("A commit was appended to the log (its first 100 events listed).",
                      _object({"first_position": _POSITION, "last_position": _POSITION,
                               "count": {"type": "integer", "minimum": 1},
                               "recorded_at": _TIME,
                               "events": {"type": "array", "items": _LOGGED,
                                          "maxItems": 100}})),
    ENDPOINT_DISABLED: ("Another webhook endpoint was disabled (through the API, or on a "
                        "410 from its receiver).",
                        _object({**_ENDPOINT, "reason": {"type": "string"},
                                 "disabled_at": _TIME})),
    CIRCUIT_OPENED: ("Another webhook endpoint's circuit opened after a run of failures: its "
                     "deliveries wait until a probe succeeds.",
                     _object({**_ENDPOINT, "consecutive_failures": {"type": "integer",
                                                                     "minimum": 1},
                              "open_until": _TIME})),
}

_AT = "2025-06-01T12:00:00.000000Z"
_EXAMPLE_STATUS = {"firm_id": "alibaba", "as_of": "2025-05-01", "as_of_until": "2025-06-01",
                   "previous_status": "compliant", "status": "violation",
                   "restatement": True, "known_at": _AT, "position": 42}
EXAMPLES: dict[str, dict[str, Any]] = {
    POSTURE_CHANGED: _EXAMPLE_STATUS,
    RESIDENCY_CHANGED: {**_EXAMPLE_STATUS, "restatement": False, "as_of_until": None,
                        "processing": {"activity_id": "pa-crm", "data_subject_country": "DE",
                                       "processed_in": "US"}},
    LEDGER_APPENDED: {"first_position": 42, "last_position": 42, "count": 1,
                      "recorded_at": _AT, "events": [{"position": 42, "kind": "shipment",
                                                      "record_id": "ship-1",
                                                      "type": "ShipmentRecorded"}]},
    ENDPOINT_DISABLED: {"endpoint_id": "wh-0123456789abcdef", "url": "https://erp.example/in",
                        "description": "ERP order blocks", "reason": "disabled through the API",
                        "disabled_at": _AT},
    CIRCUIT_OPENED: {"endpoint_id": "wh-0123456789abcdef", "url": "https://erp.example/in",
                     "description": "ERP order blocks", "consecutive_failures": 5,
                     "open_until": _AT},
}


def message_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of a delivered body of `event_type`."""
    return {"$schema": DIALECT, "title": event_type,
            **_object({"type": {"const": event_type}, "timestamp": _TIME,
                       "data": DATA[event_type][1]})}


def catalog() -> list[dict[str, Any]]:
    return [{"type": t, "description": DATA[t][0], "schema": message_schema(t),
             "example": {"type": t, "timestamp": _AT, "data": EXAMPLES[t]}} for t in DATA]


def asyncapi(server_url: str) -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel (the receiver's URL) and one message a type,
    each sent by chipledger, signed per Standard Webhooks."""
    messages = {_name(t): {"name": t, "title": t, "summary": DATA[t][0],
                           "contentType": "application/json",
                           "headers": {"$ref": "#/components/schemas/StandardWebhooksHeaders"},
                           "payload": message_schema(t),
                           "examples": [{"payload": {"type": t, "timestamp": _AT,
                                                     "data": EXAMPLES[t]}}]}
                for t in DATA}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "chipledger webhooks", "version": "1",
                 "description": "Deliveries are HTTP POSTs to each endpoint's URL, at least "
                                "once, in order per firm, signed per Standard Webhooks."},
        "servers": {"chipledger": {"host": server_url, "protocol": "https"}},
        "channels": {"endpoint": {"address": "{endpoint_url}", "description":
                                  "The URL an endpoint was registered with.",
                                  "parameters": {"endpoint_url": {}},
                                  "messages": {n: {"$ref": f"#/components/messages/{n}"}
                                               for n in messages}}},
        "operations": {"deliver": {"action": "send",
                                   "channel": {"$ref": "#/channels/endpoint"},
                                   "messages": [{"$ref": f"#/channels/endpoint/messages/{n}"}
                                                for n in messages]}},
        "components": {"messages": messages, "schemas": {"StandardWebhooksHeaders": {
            **_object(_HEADERS), "additionalProperties": True}}},
    }


_HEADERS = {"webhook-id": {"type": "string", "description": "the message id, the same at "
                           "every attempt"},
            "webhook-timestamp": {"type": "string", "pattern": "^[0-9]+$"},
            "webhook-signature": {"type": "string", "description":
                                  "v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>, one "
                                  "per signing secret, space-separated"}}


def _name(event_type: str) -> str:
    return event_type.replace(".", "_")
