"""Webhook endpoints and their deliveries (admin)."""

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.appends import parse_body, read_body
from api.auth import Admin
from api.deps import resolve_times
from domain.times import format_time
from domain.types import Text, Url
from infra.webhooks import Endpoint, Webhooks

MESSAGE_ID = r"^msg_[0-9]+_[0-9]+$"  # as the outbox writes them
EventType = Literal["posture.changed", "residency.changed", "ledger.appended"]


class EndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    url: Url
    event_types: list[EventType] = Field(min_length=1, max_length=3)
    description: Text | None = None


class RecoveryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime


def endpoint_json(e: Endpoint) -> dict[str, Any]:
    return {"id": e.endpoint_id, "url": e.url, "event_types": e.event_types,
            "description": e.description, "enabled": e.enabled,
            "created_at": format_time(e.created_at),
            "disabled_at": format_time(e.disabled_at) if e.disabled_at else None,
            "disabled_reason": e.disabled_reason}


def _hooks(request: Request) -> Webhooks:
    hooks: Webhooks = request.app.state.webhooks
    return hooks


async def create_endpoint(request: Request, admin: Admin) -> JSONResponse:
    """Register a receiver; its secret is shown in this answer only."""
    ask = parse_body(EndpointRequest, await read_body(request))
    endpoint, secret = await run_in_threadpool(_hooks(request).create, ask.url,
                                               list(ask.event_types), ask.description,
                                               recorded_by=admin.recorded_by)
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


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    router.add_api_route("/endpoints", create_endpoint, methods=["POST"],
                         name="create_webhook_endpoint")
    router.add_api_route("/endpoints", list_endpoints, methods=["GET"],
                         name="list_webhook_endpoints")
    router.add_api_route("/endpoints/{endpoint_id}", read_endpoint, methods=["GET"],
                         name="read_webhook_endpoint")
    router.add_api_route("/endpoints/{endpoint_id}", disable_endpoint, methods=["DELETE"],
                         name="disable_webhook_endpoint")
    router.add_api_route("/endpoints/{endpoint_id}/secret-rotation", rotate_secret,
                         methods=["POST"], name="rotate_webhook_secret")
    router.add_api_route("/endpoints/{endpoint_id}/deliveries", list_deliveries,
                         methods=["GET"], name="list_webhook_deliveries")
    router.add_api_route("/endpoints/{endpoint_id}/recovery", recover, methods=["POST"],
                         name="recover_webhook_deliveries")
    app.include_router(router)

