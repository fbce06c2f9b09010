"""From every error a request can end in to its problem+json answer: one table, keyed by the
error's kind (domain/errors.py) or the framework's exception, and one handler."""

from collections.abc import Callable
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.problems import Problem, _entry, field_errors, invalid, unavailable
from domain.errors import (
    Conflict,
    FieldProblem,
    Invalid,
    LedgerError,
    NotFound,
    Precondition,
    Unavailable,
)
from infra.checkpoints import CheckpointRefusedError
from infra.deadlines import database_errors, is_unavailable
from infra.merkle.proofs import ProofRequestError
from infra.merkle.publish import TreeRefusedError

log = structlog.get_logger("chipledger.api")

ToProblem = Callable[[Request, Any], Problem]
# The titles of the HTTP errors the framework raises itself (an unknown path, a bad method).
_HTTP_TITLES = {404: "Not found", 405: "Method not allowed", 401: "Unauthorized",
                403: "Forbidden", 413: "Payload too large"}


def _kind(status: int, title: str) -> ToProblem:
    """A ledger error of one kind: its message, under its own title when it has one."""
    def problem(_: Request, exc: LedgerError) -> Problem:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
        return Problem(status, exc.title or title, str(exc), headers=headers)

    return problem


def _invalid(_: Request, exc: Invalid) -> Problem:
    return invalid(field_errors(exc.field_problems, exc.where))


def _checkpoint_refused(_: Request, exc: CheckpointRefusedError) -> Problem:
    return Problem(409, "Log does not extend the latest checkpoint",
                   f"{exc.reason}; nothing was signed, and an integrity alarm is raised "
                   "(see /readyz)", slug="checkpoint-refused")


def _tree_refused(_: Request, exc: TreeRefusedError) -> Problem:
    return Problem(409, "Tree does not extend the latest signed checkpoint",
                   f"{exc.reason}; nothing was signed, and an integrity alarm is raised "
                   "(see /readyz)", slug="checkpoint-refused")


def _bad_proof_request(_: Request, exc: ProofRequestError) -> Problem:
    return invalid(field_errors([FieldProblem((exc.field,), str(exc))], ("query",)))


def _database(request: Request, exc: Exception) -> Problem:
    if not is_unavailable(exc):
        raise exc  # a refusal or a bug: the server error it always was
    log.warning("database_unavailable", method=request.method, path=request.url.path,
                error=f"{type(exc).__name__}: {exc}")
    return unavailable(request.method)


def _request_validation(_: Request, exc: RequestValidationError) -> Problem:
    return invalid([_entry(tuple(e["loc"]), e["msg"], e["type"]) for e in exc.errors()])


def _http(_: Request, exc: StarletteHTTPException) -> Problem:
    return Problem(exc.status_code, _HTTP_TITLES.get(exc.status_code, "Error"), str(exc.detail),
                   headers=dict(exc.headers or {}))


# The most specific entry along an error's class hierarchy answers for it.
PROBLEMS: dict[type[Exception], ToProblem] = {
    Problem: lambda _, exc: exc,
    NotFound: _kind(404, "Not found"),
    Conflict: _kind(409, "Conflict"),
    Precondition: _kind(412, "Precondition failed"),
    Invalid: _invalid,
    Unavailable: _kind(503, "Unavailable"),
    CheckpointRefusedError: _checkpoint_refused,
    TreeRefusedError: _tree_refused,
    ProofRequestError: _bad_proof_request,
    RequestValidationError: _request_validation,
    StarletteHTTPException: _http,
    **dict.fromkeys(database_errors(), _database),
}


def problem_for(request: Request, exc: Exception) -> Problem:
    to_problem = next(PROBLEMS[c] for c in type(exc).__mro__ if c in PROBLEMS)
    return to_problem(request, exc)


async def _answer(request: Request, exc: Exception) -> JSONResponse:
    return problem_for(request, exc).response()


def install(app: FastAPI) -> None:
    for error in PROBLEMS:
        app.add_exception_handler(error, _answer)
