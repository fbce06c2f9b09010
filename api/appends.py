"""Every append endpoint of api.md, generated from the kinds table, plus `/v1/events:batch`.

Bodies are read raw, as JSON by `strict_json` (strict UTF-8, no duplicate keys, no NaN, nesting
and integers within its limits), then validated strictly by the body's model (a number in a
string is refused), so the same parser serves single appends, batch lines, `chipledger
import` and the what-ifs of replays.
"""

import json
import re
from collections.abc import Callable, Coroutine
from functools import cache, lru_cache
from typing import Any, TypeVar

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError, create_model
from starlette.concurrency import run_in_threadpool

from api import strict_json
from api.auth import Writer, recorded_by
from api.problems import Problem, invalid, json_errors, pydantic_errors
from domain.application import Append
from domain.bodies import Body
from domain.errors import FieldProblem, InvalidRecordError
from domain.ids import is_record_id
from domain.kinds import BY_COLLECTION, KINDS, KindSpec, Role
from infra.gc_pause import gc_paused
from infra.group_commit import GroupCommitter
from infra.service import Answer, request_fingerprint

JSON = "application/json"
NDJSON = "application/x-ndjson"
MAX_BATCH_LINES = 100_000
M = TypeVar("M", bound=BaseModel)


def action_segment(spec: KindSpec, role: Role) -> str:
    """The URL segment of a later append: /v1/{collection}/{id}/{segment}."""
    if role is Role.CORRECT:
        return "corrections"
    if role is Role.DILIGENCE:
        return "due-diligence"
    if role is Role.SUSPEND:
        return "suspension"
    if role is Role.REINSTATE:
        return "reinstatement"
    if role is Role.CHANGE:
        return "amendments" if spec.kind in ("regulation", "lease") else "changes"
    return {"regulation": "rescission", "licence": "revocation", "lease": "termination",
            "processing_activity": "end"}[spec.kind]


ACTIONS: dict[tuple[str, str], Role] = {
    (spec.collection, action_segment(spec, role)): role
    for spec in KINDS.values()
    for role in spec.bodies
    if role is not Role.CREATE
}


def parse_body(model: type[M], raw: bytes | str, prefix: tuple[str | int, ...] = ("body",)
               ) -> M:
    """A body read by `strict_json`, validated by `model`; Problem(422) naming each bad field."""
    try:
        return validated(model, raw, strict_json.loads(raw))
    except strict_json.JsonRefusedError as refused:
        raise invalid(json_errors(refused, prefix)) from None
    except ValidationError as error:
        raise invalid(pydantic_errors(error, prefix)) from None


def validated(model: type[M], raw: bytes | str, value: Any) -> M:
    """`raw` validated by `model`, strictly, as JSON. Where pydantic's parser refuses what
    strict_json read (a float of thousands of digits), `value` as read is written again for
    it: the field then answers for itself (not finite, say) instead of the body as a whole."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        if not any(e["type"] == "json_invalid" for e in error.errors()):
            raise
    return model.model_validate_json(json.dumps(value))


def parse_append(
    spec: KindSpec,
    role: Role,
    raw: bytes | str,
    *,
    record_id: str | None = None,
    expected_version: int | None = None,
    prefix: tuple[str | int, ...] = ("body",),
) -> Append:
    """Validate one body; raises Problem(422) naming every bad field."""
    body = parse_body(spec.bodies[role], raw, prefix)
    return Append(spec.kind, role, body, record_id, expected_version)


def parse_batch_line(line: str | bytes, number: int) -> Append:
    """A batch line: {"type": "leases", "body": {...}} or, for a later append,
    {"type": "leases/amendments", "id": "l-1", "body": {...}} (also "leases/l-1/amendments")."""
    try:
        item = strict_json.loads(line)
    except strict_json.JsonRefusedError as refused:
        raise invalid(json_errors(refused, ("body", number))) from None
    return parse_batch_item(item, line, number)


def parse_batch_item(item: Any, line: str | bytes, number: int) -> Append:
    """A batch line already read by `strict_json` (`item`), with the JSON it was read from."""
    where: tuple[str | int, ...] = ("body", number)
    if not isinstance(item, dict) or set(item) - {"type", "id", "body"} or "body" not in item \
            or not isinstance(item.get("type"), str):
        raise invalid([_err(where, 'expected {"type": "...", "id"?: "...", "body": {...}}',
                            "batch_line")])
    spec, role, record_id = _resolve_type(item["type"], item.get("id"), where)
    model = spec.bodies[role]
    try:
        line_body = _line_model(model).model_validate_json(line)
    except ValidationError as error:
        if any(e["type"] == "json_invalid" or e["loc"][:1] != ("body",)
               for e in error.errors()):
            # JSON that strict_json took but pydantic's parser refuses (a float of thousands
            # of digits): the body validated alone, from the value strict_json read
            return Append(spec.kind, role, validate_alone(model, item["body"], where),
                          record_id)
        raise invalid(pydantic_errors(error, where)) from None  # its locs start at "body"
    return Append(spec.kind, role, line_body.body, record_id)


def validate_alone(model: type[M], body: Any, where: tuple[str | int, ...]) -> M:
    """A line's body, already read by strict_json, validated on its own (its JSON again)."""
    try:
        return model.model_validate_json(json.dumps(body))
    except ValidationError as error:
        raise invalid(pydantic_errors(error, (*where, "body"))) from None


def batch_lines(raw: bytes) -> list[tuple[int, bytes]]:
    """The numbered lines of an NDJSON document that are not blank. Split as bytes, on LF, CR
    or CRLF only: a line separator inside a JSON string (U+2028, U+0085) is no line break,
    and each line's UTF-8 is checked on its own, so a bad byte is named by its line."""
    return [(n, line) for n, line in enumerate(raw.splitlines(), 1) if line.strip()]


class _Line(BaseModel):
    body: Body


@cache
def _line_model(model: type[Body]) -> type[_Line]:
    """A batch line whose body is `model`. The line is validated as it came, in the body's
    own strict JSON mode: dumping the parsed body back to JSON to validate it cost as much
    as the validation. Its other keys were checked on the parsed line."""
    return create_model(f"{model.__name__}Line", __base__=_Line, body=(model, ...))


def _resolve_type(type_: str, record_id: Any, where: tuple[str | int, ...]
                  ) -> tuple[KindSpec, Role, str | None]:
    parts = type_.strip("/").split("/")
    if len(parts) == 3:
        parts, record_id = [parts[0], parts[2]], parts[1]
    spec = BY_COLLECTION.get(parts[0])
    if spec is None:
        raise invalid([_err((*where, "type"), f"unknown record type {parts[0]!r}",
                            "unknown_type")])
    if len(parts) == 1:
        return spec, Role.CREATE, None
    role = ACTIONS.get((parts[0], parts[1]))
    if role is None or len(parts) != 2:
        raise invalid([_err((*where, "type"), f"unknown append {type_!r}", "unknown_type")])
    if not isinstance(record_id, str) or not is_record_id(record_id):
        raise invalid([_err((*where, "id"), "a later append needs the record's id",
                            "missing_id")])
    return spec, role, record_id


def _err(loc: tuple[str | int, ...], msg: str, kind: str) -> dict[str, Any]:
    return {"loc": list(loc), "field": ".".join(map(str, loc)), "msg": msg, "type": kind}


async def read_body(request: Request, media: str = JSON) -> bytes:
    """The body, at most `max_body_bytes` of it, sent as `media` (UTF-8) or empty."""
    declared_media = _media_of(request, media)
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() \
            and (len(declared) > 18 or int(declared) > limit):
        raise Problem(413, "Payload too large", f"bodies are limited to {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Problem(413, "Payload too large", f"bodies are limited to {limit} bytes")
        chunks.append(chunk)
    if size and not declared_media:
        raise _unsupported(media, "the body has no Content-Type")
    return b"".join(chunks)


def _media_of(request: Request, media: str) -> bool:
    """Whether a Content-Type is declared; 415 unless it is `media`, in UTF-8 if it says."""
    header = request.headers.get("content-type")
    if header is None:
        return False
    kind, *parameters = (part.strip() for part in header.split(";"))
    if kind.lower() != media:
        raise _unsupported(media, f"the body is declared as {kind[:100]!r}")
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            raise _unsupported(media, "the body must be UTF-8")
    return True


def _unsupported(media: str, why: str) -> Problem:
    return Problem(415, "Unsupported media type", f"{why}: send Content-Type: {media}")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise invalid([_err(("header", "Idempotency-Key"), "use 1 to 255 printable characters",
                            "idempotency_key")])
    return key


def _if_match(request: Request) -> int | None:
    value = request.headers.get("if-match")
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not _VERSION.fullmatch(text):  # str.isdigit takes "²", which int() does not
        raise invalid([_err(("header", "If-Match"), "If-Match takes a record version number",
                            "if_match")])
    return int(text)


_VERSION = re.compile(r"[0-9]{1,15}")


async def run_appends(request: Request, appends: list[Append], raw: bytes, *,
                      batch: bool) -> JSONResponse:
    committer: GroupCommitter = request.app.state.committer
    key = _idempotency_key(request)
    fingerprint = request_fingerprint(request.method, request.url.path, raw)
    sender = recorded_by(request)
    answer: Answer
    if batch:  # its own transaction, in bulk: in a worker thread, off the event loop
        answer = await run_in_threadpool(committer.submit, appends, recorded_by=sender,
                                         batch=True, idempotency_key=key,
                                         fingerprint=fingerprint)
    else:
        answer = await committer.submit_async(appends, recorded_by=sender, idempotency_key=key,
                                              fingerprint=fingerprint)
    for kind in answer.appended:
        request.app.state.metrics.appended.labels(kind).inc()
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if not batch:
        headers["ETag"] = f'"{answer.body["version"]}"'
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


Handler = Callable[..., Coroutine[Any, Any, JSONResponse]]


def _create_handler(spec: KindSpec) -> Handler:
    async def create(request: Request, _: Writer) -> JSONResponse:
        raw = await read_body(request)
        return await run_appends(request, [parse_append(spec, Role.CREATE, raw)], raw,
                                 batch=False)

    return create


def _action_handler(spec: KindSpec, role: Role) -> Handler:
    async def act(request: Request, record_id: str, _: Writer) -> JSONResponse:
        if not is_record_id(record_id):
            raise Problem(404, "Not found", f"no {spec.kind.replace('_', ' ')} with id "
                                            f"{record_id!r}")
        raw = await read_body(request)
        append = parse_append(spec, role, raw, record_id=record_id,
                              expected_version=_if_match(request))
        return await run_appends(request, [append], raw, batch=False)

    return act


async def append_batch(request: Request, _: Writer) -> JSONResponse:
    """Append many records in one transaction: all or nothing."""
    raw = await read_body(request, NDJSON)
    lines = batch_lines(raw)
    if not lines:
        raise invalid([_err(("body",), "the batch is empty", "empty_batch")])
    if len(lines) > MAX_BATCH_LINES:
        raise invalid([_err(("body",), f"at most {MAX_BATCH_LINES} lines a batch",
                            "batch_too_large")])
    appends, errors = [], []
    with gc_paused():  # thousands of validated bodies that all live on: see infra.gc_pause
        for number, line in lines:
            try:
                appends.append(parse_batch_line(line, number))
            except Problem as problem:
                errors += problem.errors
    if errors:
        raise invalid(errors)
    try:
        return await run_appends(request, appends, raw, batch=True)
    except InvalidRecordError as error:
        raise invalid(_batch_problems(error.problems, [n for n, _ in lines])) from None


def _batch_problems(problems: list[FieldProblem], numbers: list[int]) -> list[dict[str, Any]]:
    """Name a refused record by its line, as a refused parse does: body.<line>.body.<field>.
    The Ledger names the append's 1-based index among the non-blank lines, and only when the
    batch has more than one."""
    entries = []
    for problem in problems:
        index, loc = (problem.loc[0], problem.loc[1:]) if len(numbers) > 1 else (1, problem.loc)
        line = numbers[int(index) - 1]
        entries.append(_err(("body", line, "body", *loc), problem.msg, problem.type))
    return entries


@lru_cache(maxsize=64)
def _schema(model: Any) -> dict[str, Any]:
    """The OpenAPI request body of a route whose body is read raw (computed once a model)."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": model.model_json_schema()}}}}


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1", tags=["appends"])
    for spec in KINDS.values():
        create = spec.bodies[Role.CREATE]
        router.add_api_route(
            f"/{spec.collection}", _create_handler(spec), methods=["POST"], status_code=201,
            name=f"create_{spec.kind}", summary=f"Record a new {spec.kind.replace('_', ' ')}",
            openapi_extra=_schema(create),
        )
        for role, model in spec.bodies.items():
            if role is Role.CREATE:
                continue
            segment = action_segment(spec, role)
            router.add_api_route(
                f"/{spec.collection}/{{record_id}}/{segment}", _action_handler(spec, role),
                methods=["POST"], name=f"{spec.kind}_{segment.replace('-', '_')}",
                summary=f"Record {spec.events[role]}", openapi_extra=_schema(model),
            )
    router.add_api_route(
        "/events:batch", append_batch, methods=["POST"], name="append_batch",
        summary="Append many records, all or nothing (application/x-ndjson)",
    )
    app.include_router(router)
