"""Errors as application/problem+json (RFC 9457), one place for every route."""

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.strict_json import JsonRefusedError
from domain.errors import (
    FieldProblem,
    InvalidRecordError,
    RecordConflictError,
    RecordNotFoundError,
    VersionMismatchError,
)
from infra.deadlines import DatabaseTimeoutError, is_unavailable
from infra.posture import ProjectionBehindError
from infra.service import ConcurrentAppendError, IdempotencyKeyReusedError

PROBLEM = "application/problem+json"
_BASE = "https://chipledger.dev/problems/"
# Seconds a client is asked to wait when the database is unavailable: the pool tries the
# database again within about that long.
RETRY_AFTER_UNAVAILABLE = "2"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What an unreachable or silent database raises, on either backend; is_unavailable sorts them
# from refusals (a syntax error is an sqlite3.OperationalError too).
_DATABASE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseTimeoutError, OperationalError, InterfaceError, psycopg.OperationalError,
    psycopg.InterfaceError, sqlite3.OperationalError)

log = structlog.get_logger("chipledger.api")


class Problem(Exception):  # noqa: N818 - it is the RFC's word
    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        slug: str | None = None,
        errors: Sequence[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.slug = slug or title.lower().replace(" ", "-")
        self.errors = list(errors)
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {
            "type": _BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail or self.title,
        }
        if self.errors:
            body["errors"] = self.errors
        return JSONResponse(body, status_code=self.status, media_type=PROBLEM,
                            headers=self.headers)


def field_errors(problems: Iterable[FieldProblem], prefix: tuple[str | int, ...] = ("body",)
                 ) -> list[dict[str, Any]]:
    return [_entry((*prefix, *p.loc), p.msg, p.type) for p in problems]


def pydantic_errors(error: ValidationError, prefix: tuple[str | int, ...] = ("body",)
                    ) -> list[dict[str, Any]]:
    return [_entry((*prefix, *e["loc"]), e["msg"], e["type"]) for e in error.errors()]


def json_errors(refused: JsonRefusedError, prefix: tuple[str | int, ...] = ("body",)
                ) -> list[dict[str, Any]]:
    return [_entry((*prefix, *p.loc), p.msg, p.type) for p in refused.problems]


def _entry(loc: tuple[Any, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "field": ".".join(str(p) for p in loc), "msg": msg, "type": kind}


def invalid(errors: list[dict[str, Any]], detail: str = "") -> Problem:
    if not detail:
        detail = "; ".join(f"{e['field']}: {e['msg']}" for e in errors[:5])
    return Problem(422, "Invalid request", detail, slug="validation", errors=errors)


def unavailable(method: str) -> Problem:
    """503 for a database that cannot be reached or did not answer in time. A write may have
    been committed without its answer arriving: the client is told how to find out safely."""
    detail = "the database is unavailable or did not answer in time; try again shortly"
    if method in _WRITES:
        detail += (". This request may or may not have been recorded: retry it with the same "
                   "Idempotency-Key, which answers what was recorded or records it once")
    return Problem(503, "Database unavailable", detail, slug="database-unavailable",
                   headers={"Retry-After": RETRY_AFTER_UNAVAILABLE})


def install(app: FastAPI) -> None:
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        if not is_unavailable(exc):
            raise exc  # a refusal or a bug: the server error it always was
        log.warning("database_unavailable", method=request.method, path=request.url.path,
                    error=f"{type(exc).__name__}: {exc}")
        return unavailable(request.method).response()

    for error in _DATABASE_ERRORS:
        app.add_exception_handler(error, _database)

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [_entry(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors()]
        return invalid(errors).response()

    @app.exception_handler(InvalidRecordError)
    async def _invalid_record(_: Request, exc: InvalidRecordError) -> JSONResponse:
        return invalid(field_errors(exc.problems)).response()

    @app.exception_handler(RecordNotFoundError)
    async def _not_found(request: Request, exc: RecordNotFoundError) -> JSONResponse:
        return Problem(404, "Not found", str(exc)).response()

    @app.exception_handler(RecordConflictError)
    async def _conflict(_: Request, exc: RecordConflictError) -> JSONResponse:
        return Problem(409, "Conflict", str(exc)).response()

    @app.exception_handler(ConcurrentAppendError)
    async def _concurrent(_: Request, exc: ConcurrentAppendError) -> JSONResponse:
        return Problem(409, "Conflict", str(exc), headers={"Retry-After": "1"}).response()

    @app.exception_handler(VersionMismatchError)
    async def _precondition(_: Request, exc: VersionMismatchError) -> JSONResponse:
        return Problem(412, "Precondition failed", str(exc)).response()

    @app.exception_handler(IdempotencyKeyReusedError)
    async def _key_reused(_: Request, exc: IdempotencyKeyReusedError) -> JSONResponse:
        errors = [_entry(("header", "Idempotency-Key"), str(exc), "idempotency_key_reused")]
        return invalid(errors).response()

    @app.exception_handler(ProjectionBehindError)
    async def _behind(_: Request, exc: ProjectionBehindError) -> JSONResponse:
        return Problem(503, "Read models behind", str(exc),
                       headers={"Retry-After": "1"}).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized",
                  403: "Forbidden", 413: "Payload too large"}
        title = titles.get(exc.status_code, "Error")
        return Problem(exc.status_code, title, str(exc.detail),
                       headers=dict(exc.headers or {})).response()
