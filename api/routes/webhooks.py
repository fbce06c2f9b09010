"""Webhook endpoints and their deliveries (admin)."""

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.appends import parse_body, read_body
from api.auth import Admin
from api.deps import Reader, resolve_times
from api.openapi import request_body
from domain.bodies import MaxPerSecond
from domain.times import format_time
from domain.types import Text, Url
from infra.webhooks import Endpoint, Webhooks
from infra.webhooks.catalog import asyncapi, catalog

MESSAGE_ID = r"^(msg|op)_[0-9]+_[0-9]+$"  # as the outbox writes them
# A log position: messages' seqs are position x 10^7 (projections.outbox), which a 64-bit
# integer holds up to about 9.2 x 10^11.
Position = Annotated[int, Field(ge=0, le=900_000_000_000)]
EventType = Literal["posture.changed", "residency.changed", "ledger.appended",
                    "endpoint.disabled", "endpoint.circuit_opened"]


class EndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url
    event_types: list[EventType] = Field(min_length=1, max_length=5)
    description: Text | None = None
    max_per_second: MaxPerSecond | None = None
    since_position: Position | None = None  # backfill the history after it


class ChangeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_per_second: MaxPerSecond | None


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    since_position: Position


class RecoveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime


def endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {"id": e.endpoint_id, "url": e.url, "event_types": e.event_types,
            "description": e.description, "enabled": e.enabled,
            "created_at": format_time(e.created_at),
            "disabled_at": format_time(e.disabled_at) if e.disabled_at else None,
            "disabled_reason": e.disabled_reason, "max_per_second": e.max_per_second,
            "circuit": {"state": e.circuit_state,
                        "consecutive_failures": e.consecutive_failures,
                        "open_until": format_time(e.open_until) if e.open_until else None,
                        "openings": e.circuit_openings}}


def _hooks(request: Request) -> Webhooks:
    hooks: Webhooks = request.app.state.webhooks
    return hooks


async def create_endpoint(request: Request, admin: Admin) -> JSONResponse:
    """Register a receiver; its secret is shown in this answer only."""
    ask = parse_body(EndpointRequest, await read_body(request))
    endpoint, secret = await run_in_threadpool(
        partial(_hooks(request).create, ask.url, list(ask.event_types), ask.description,
                recorded_by=admin.recorded_by, max_per_second=ask.max_per_second,
                since_position=ask.since_position))
    return JSONResponse({**endpoint_json(endpoint), "secret": secret}, status_code=201)


async def list_endpoints(request: Request, _: Admin) -> dict[str, Any]:
    endpoints = await run_in_threadpool(_hooks(request).endpoints)
    return {"endpoints": [endpoint_json(e) for e in endpoints]}


async def read_endpoint(request: Request, endpoint_id: str, _: Admin) -> dict[str, Any]:
    """One endpoint (never its secret)."""
    endpoint = await run_in_threadpool(_hooks(request).get, endpoint_id)
    return endpoint_json(endpoint)


async def disable_endpoint(request: Request, endpoint_id: str, admin: Admin
                           ) -> dict[str, Any]:
    """Stop delivering to the endpoint (recorded in the log)."""
    endpoint = await run_in_threadpool(_hooks(request).disable, endpoint_id,
                                       "disabled through the API",
                                       recorded_by=admin.recorded_by)
    return endpoint_json(endpoint)


async def rotate_secret(request: Request, endpoint_id: str, admin: Admin) -> dict[str, Any]:
    """A new secret; the old one keeps signing alongside it for 24 hours."""
    secret = await run_in_threadpool(_hooks(request).rotate, endpoint_id,
                                     recorded_by=admin.recorded_by)
    return {"id": endpoint_id, "secret": secret}


async def list_deliveries(
    request: Request, endpoint_id: str, _: Admin,
    status: Annotated[Literal["pending", "succeeded", "failed", "dead"] | None,
                      Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(
        description="the last message_id of the previous page", max_length=64,
        pattern=MESSAGE_ID)] = None,
) -> dict[str, Any]:
    """Deliveries with every attempt: time, status code, latency, error; next attempt."""
    rows = await run_in_threadpool(_hooks(request).deliveries, endpoint_id, status, limit,
                                   cursor)
    return {"endpoint_id": endpoint_id, "deliveries": rows,
            "next_cursor": rows[-1]["message_id"] if len(rows) == limit else None}


async def recover(request: Request, endpoint_id: str, _: Admin) -> dict[str, Any]:
    """Queue again every delivery that failed or died since `since`."""
    ask = parse_body(RecoveryRequest, await read_body(request))
    since = resolve_times(None, ask.since, name="since")[1]
    count = await run_in_threadpool(_hooks(request).recover, endpoint_id, since)
    return {"endpoint_id": endpoint_id, "requeued": count}


async def change_endpoint(request: Request, endpoint_id: str, admin: Admin
                          ) -> dict[str, Any]:
    """A new rate limit (`max_per_second`, null for none), recorded in the log."""
    ask = parse_body(ChangeRequest, await read_body(request))
    endpoint = await run_in_threadpool(partial(
        _hooks(request).change, endpoint_id, ask.max_per_second,
        recorded_by=admin.recorded_by))
    return endpoint_json(endpoint)


async def backfill(request: Request, endpoint_id: str, _: Admin) -> dict[str, Any]:
    """Deliver again, in order, the messages recorded after `since_position`."""
    ask = parse_body(BackfillRequest, await read_body(request))
    count = await run_in_threadpool(_hooks(request).backfill, endpoint_id, ask.since_position)
    return {"endpoint_id": endpoint_id, "since_position": ask.since_position, "queued": count}


async def event_types(_: Reader) -> dict[str, Any]:
    """Every message type a webhook carries, with its JSON Schema and an example."""
    return {"event_types": catalog()}


async def asyncapi_document(request: Request, _: Reader) -> dict[str, Any]:
    """The webhooks as an AsyncAPI 3.0 document."""
    return asyncapi(request.url.netloc)


# (method, path under /v1/webhooks, handler, route name)
ROUTES = (
    ("POST", "/endpoints", create_endpoint, "create_webhook_endpoint"),
    ("GET", "/endpoints", list_endpoints, "list_webhook_endpoints"),
    ("GET", "/endpoints/{endpoint_id}", read_endpoint, "read_webhook_endpoint"),
    ("DELETE", "/endpoints/{endpoint_id}", disable_endpoint, "disable_webhook_endpoint"),
    ("POST", "/endpoints/{endpoint_id}/secret-rotation", rotate_secret,
     "rotate_webhook_secret"),
    ("GET", "/endpoints/{endpoint_id}/deliveries", list_deliveries, "list_webhook_deliveries"),
    ("POST", "/endpoints/{endpoint_id}/recovery", recover, "recover_webhook_deliveries"),
    ("POST", "/endpoints/{endpoint_id}/changes", change_endpoint, "change_webhook_endpoint"),
    ("POST", "/endpoints/{endpoint_id}/backfill", backfill, "backfill_webhook_endpoint"),
    ("GET", "/event-types", event_types, "webhook_event_types"),
    ("GET", "/asyncapi.json", asyncapi_document, "webhook_asyncapi"),
)
# The bodies the handlers read raw, for the document.
_BODIES = {"create_webhook_endpoint": request_body(EndpointRequest),
           "recover_webhook_deliveries": request_body(RecoveryRequest),
           "change_webhook_endpoint": request_body(ChangeRequest),
           "backfill_webhook_endpoint": request_body(BackfillRequest)}


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    for method, path, handler, name in ROUTES:
        router.add_api_route(path, handler, methods=[method], name=name,
                             status_code=201 if name == "create_webhook_endpoint" else None,
                             openapi_extra=_BODIES.get(name))
    app.include_router(router)
