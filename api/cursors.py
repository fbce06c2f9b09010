"""The one cursor convention of every list: an opaque token (base64url of a small JSON object
naming the list it pages and where the page ended), answered as `next_cursor` and refused as
a 422 naming `cursor` when it is not one this server gave for that list."""

import base64
import binascii
import json
from typing import Any

from api.problems import Problem, invalid


def encode_cursor(scope: str, after: str | int | tuple[str, ...]) -> str:
    raw = json.dumps({"list": scope, "after": after}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, scope: str, kind: type[str] | type[int] = str
                  ) -> Any:
    """Where the previous page of list `scope` ended (None for the first page)."""
    if cursor is None:
        return None
    after = _after(cursor, scope)
    if type(after) is not kind or (isinstance(after, int) and after < 0):
        raise _bad_cursor()
    return after


def decode_key_cursor(cursor: str | None, scope: str) -> tuple[str, str, str] | None:
    """`decode_cursor` for a list paged by a finding's key (subject type, id, regulation)."""
    if cursor is None:
        return None
    after = _after(cursor, scope)
    if not (isinstance(after, list) and len(after) == 3 and all(type(a) is str for a in after)):
        raise _bad_cursor()
    return after[0], after[1], after[2]


def _after(cursor: str, scope: str) -> Any:
    try:
        found = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise _bad_cursor() from None
    if not isinstance(found, dict) or found.get("list") != scope:
        raise _bad_cursor()
    return found.get("after")


def _bad_cursor() -> Problem:
    msg = "not a cursor of this list: pass the next_cursor of its previous page"
    return invalid([{"loc": ["query", "cursor"], "field": "query.cursor", "msg": msg,
                     "type": "cursor"}], detail=msg)
