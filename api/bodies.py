"""Request bodies, read raw: at most `max_body_bytes`, as the declared media type, parsed by
`strict_json` (strict UTF-8, no duplicate keys, no NaN, nesting and integers within its
limits), then validated strictly by the body's model (a number in a string is refused). The
same parser serves single appends, batch lines, `chipledger import` and replays' what-ifs."""

import hashlib
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from api import strict_json
from api.problems import Problem, invalid, json_errors, pydantic_errors
from domain.application import Append
from domain.kinds import KindSpec, Role

JSON = "application/json"
NDJSON = "application/x-ndjson"
M = TypeVar("M", bound=BaseModel)


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


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What an Idempotency-Key's request is compared by, when the key comes again: its parsed
    content (each line of a batch), so other whitespace or key order is the same request."""
    return hashlib.sha256(f"{method} {path}\n".encode() + _content(body)).hexdigest()


def _content(body: bytes) -> bytes:
    try:  # one JSON document (on any number of lines), else NDJSON, a document a line
        lines = [json.loads(body)]
    except ValueError:
        try:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError:  # not JSON: refused before any fingerprint is kept; bytes do
            return body
    return b"\n".join(json.dumps(v, sort_keys=True, separators=(",", ":")).encode()
                       for v in lines)
