"""Liveness, readiness and metrics."""

import asyncio
import contextvars
from functools import partial
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from api.deps import Reader
from api.problems import RETRY_AFTER_UNAVAILABLE
from domain.errors import Unavailable
from infra.deadlines import database_calls
from infra.metrics import Metrics
from infra.webhooks import Endpoint

# /readyz answers within this long (and a little more), the database answering or not.
READY_SECONDS = 1.5
# Always exported, so a dashboard shows 0 rather than no series.
_ALARM_COMPONENTS = {"projection", "integrity"}

router = APIRouter(tags=["operations"])


@router.get("/healthz", name="healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", name="readyz")
async def readyz(request: Request) -> JSONResponse:
    """The database answers; the body says how far the log has come, and `degraded` with the
    alarms when something needs an operator (the service still serves). Answered within
    READY_SECONDS either way: the checks run with a deadline of their own, in a thread of
    the loop's executor (not the request threadpool, which a hung database may fill), and
    are left to finish alone when they take too long."""
    checks = partial(_readiness, request.app.state,
                     min(READY_SECONDS, request.app.state.settings.database_timeout))
    loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(
            loop.run_in_executor(None, contextvars.copy_context().run, checks),
            READY_SECONDS + 0.3)
    except Exception as error:  # any failure to reach the database means not ready
        reason = "timeout" if isinstance(error, TimeoutError | Unavailable) \
            else type(error).__name__
        return JSONResponse({"status": "unavailable", "database": reason}, status_code=503,
                            headers={"Retry-After": RETRY_AFTER_UNAVAILABLE})


def _readiness(state: Any, timeout: float) -> JSONResponse:
    container = state.container
    with database_calls(timeout):
        head = container.store.head()
        projected = state.posture.projected()
        alarms = container.alarms.active()
    body: dict[str, Any] = {
        "status": "degraded" if alarms else "ready",
        "alarms": [alarm.to_json() for alarm in alarms],
        "database": "ok",
        "backend": state.settings.backend,
        "head_position": head.position if head else 0,
        "projections": {"findings": {"position": projected,
                                     "lag": max(0, (head.position if head else 0) - projected)}},
    }
    if state.container.reads.standbys:
        body["replicas"] = state.container.reads.lags(body["head_position"], projected)
    return JSONResponse(body)


@router.get("/metrics", name="metrics")
async def metrics(request: Request, _: Reader) -> Response:
    """Prometheus text exposition."""
    state = request.app.state
    head = await run_in_threadpool(state.container.store.head)
    state.metrics.head_position.set(head.position if head else 0)
    projected = await run_in_threadpool(state.posture.projected)
    by_state, oldest = await run_in_threadpool(state.webhooks.counts)
    for name in ("pending", "succeeded", "failed", "dead"):
        state.metrics.webhook_deliveries.labels(name).set(by_state.get(name, 0))
    state.metrics.oldest_pending.set(oldest or 0)
    endpoints = await run_in_threadpool(state.webhooks.endpoints)
    _circuits(state.metrics, endpoints)
    alarms = await run_in_threadpool(state.container.alarms.active)
    for component in {alarm.component for alarm in alarms} | _ALARM_COMPONENTS:
        state.metrics.alarms.labels(component).set(
            sum(alarm.component == component for alarm in alarms))
    state.metrics.projection_lag.labels("findings").set(
        max(0, (head.position if head else 0) - projected))
    sources = state.container.reads
    lags = await run_in_threadpool(sources.lags, head.position if head else 0, projected)
    state.metrics.show_replicas(lags, sources.served)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _circuits(metrics: Metrics, endpoints: list[Endpoint]) -> None:
    enabled = [e for e in endpoints if e.enabled]
    for name in ("closed", "open", "half_open"):
        metrics.webhook_circuits.labels(name).set(sum(e.circuit_state == name for e in enabled))
    for e in enabled:
        metrics.webhook_circuit_openings.labels(e.endpoint_id).set(e.circuit_openings)
        metrics.webhook_consecutive_failures.labels(e.endpoint_id).set(e.consecutive_failures)

