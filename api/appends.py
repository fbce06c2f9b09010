"""Batch lines (`/v1/events:batch`, `chipledger import`, replays' what-ifs): each names its
append by the path it would be sent to alone, e.g. {"type": "leases/amendments", "id": ...}.
Single bodies are read by api/bodies.py (re-exported here); the routes are api/routes/."""

import json
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from api import strict_json
from api.bodies import JSON, NDJSON, M, parse_append, parse_body, read_body, validated
from api.problems import _entry as _err
from api.problems import invalid, json_errors, pydantic_errors
from api.routes.appends import ACTIONS
from domain.application import Append
from domain.bodies import Body
from domain.ids import is_record_id
from domain.kinds import BY_COLLECTION, KindSpec, Role

__all__ = ["ACTIONS", "JSON", "NDJSON", "batch_lines", "parse_append", "parse_batch_item",
           "parse_batch_line", "parse_body", "read_body", "validate_alone", "validated"]

MAX_BATCH_LINES = 100_000


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
