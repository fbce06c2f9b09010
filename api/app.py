"""The FastAPI application: built by `create_app`, nothing done at import."""

import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import appends, audit, ops, posture, problems, reads, replays, webhooks, workbench
from api.problems import Problem
from infra.bootstrap import Container, bootstrap
from infra.checkpoints import Checkpointer, signing_key_for
from infra.deadlines import database_calls
from infra.group_commit import GroupCommitter
from infra.keys import KeyRing
from infra.metrics import Metrics
from infra.posture import PostureService
from infra.replay import ReplayService
from infra.runner import Workers
from infra.service import AppendService, ReadService
from infra.settings import AuthMode, Settings
from infra.webhooks import Webhooks

log = structlog.get_logger("chipledger.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(settings: Settings | None = None, container: Container | None = None, *,
               workers: bool = True) -> FastAPI:
    """Build the app. With no container, one is bootstrapped at startup and closed at
    shutdown; a given container belongs to the caller. With `workers`, the projection
    runner follows the log in a background thread of this process."""
    settings = container.settings if container else (settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = container is None
        built = container or bootstrap(settings)
        wire(app, built)
        app.state.committer.start()
        if settings.auth is AuthMode.DISABLED:
            log.warning("auth_disabled", detail="CHIPLEDGER_AUTH=disabled: every request is "
                        "served as admin, without a key. Never run this way in production.")
        background = Workers(built, poll_interval=settings.poll_interval,
                             checkpointer=app.state.checkpointer,
                             dispatch=True) if workers else None
        if background:
            background.start()
        log.info("api_started", backend=settings.backend, workers=workers)
        try:
            yield
        finally:
            app.state.committer.stop()
            if background:
                background.stop()
            if owned:
                built.close()

    app = FastAPI(
        title="chipledger",
        version="0.1.0",
        summary="Event-sourced, bitemporal audit ledger for AI-compute export control",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    problems.install(app)
    appends.install(app)
    replays.install(app)
    posture.install(app)
    reads.install(app)
    audit.install(app)
    ops.install(app)
    webhooks.install(app)
    workbench.install(app)
    app.add_middleware(Observe)
    return app


def wire(app: FastAPI, container: Container) -> None:
    app.state.container = container
    app.state.appends = AppendService(container)
    app.state.committer = GroupCommitter(app.state.appends,
                                         database_timeout=container.settings.database_timeout)
    app.state.reads = ReadService(container)
    app.state.keyring = KeyRing(container.store)
    app.state.posture = PostureService(container)
    app.state.replays = ReplayService(container)
    app.state.signing_key = signing_key_for(container)
    app.state.checkpointer = Checkpointer(container, app.state.signing_key)
    app.state.webhooks = Webhooks(container)
    workbench.wire(app, container)


class Observe:
    """Bind a request id and give the request's database calls their deadline, then log one
    canonical line and record metrics per request.

    A plain ASGI middleware: Starlette's BaseHTTPMiddleware runs the app in a task group with
    memory streams for the body and the answer, which cost a third of the event loop's time
    per append. This one only wraps `send`, to learn the status and add X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                given = value.decode("latin-1")
                break
        # 32 random hex digits, as uuid4().hex gave, without building a UUID per request
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(16)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                message["headers"] = [*message.get("headers", ()),
                                      (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            with database_calls(scope["app"].state.settings.database_timeout):
                await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("request_failed", method=scope["method"], path=scope["path"])
            if answered:
                raise
            status = 500
            problem = Problem(500, "Internal server error",
                              f"request {request_id} failed; see the server log").response()
            await problem(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            metrics: Metrics = scope["app"].state.metrics
            metrics.requests.labels(scope["method"], route, str(status)).inc()
            metrics.latency.labels(scope["method"], route).observe(elapsed)
            principal = scope.get("state", {}).get("principal")
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                key_id=principal.key_id if principal else None,
                role=principal.role.value if principal else None,
            )
