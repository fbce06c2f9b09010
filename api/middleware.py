"""The ASGI middleware every request passes: request ids, deadlines, the canonical log line
and metrics."""

import re
import secrets
import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import Problem
from infra.deadlines import database_calls
from infra.metrics import Metrics

log = structlog.get_logger("chipledger.api")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


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
