"""Problems as application/problem+json (RFC 9457): the answer every refusal is given, and
the field entries of a 422. api/errors.py maps the ledger's errors to them."""

from collections.abc import Iterable, Sequence
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.strict_json import JsonRefusedError
from domain.errors import FieldProblem

PROBLEM = "application/problem+json"
_BASE = "https://chipledger.dev/problems/"
# Seconds a client is asked to wait when the database is unavailable: the pool tries the
# database again within about that long.
RETRY_AFTER_UNAVAILABLE = "2"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})

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
