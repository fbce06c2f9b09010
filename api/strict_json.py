"""The one reader of JSON from outside: RFC 8259 and no more, within the service's limits.

json.loads and pydantic's parser each take more than the RFC allows (duplicate keys, of which
the last silently wins; NaN and Infinity; lone surrogates) or fail past limits of their own
(Python's int-string limit, the recursion limit) with errors that name no field, or with no
error a client can be shown at all. Here each is refused, naming the place it was found.

Most documents have none of these, and pydantic's parser reads them in a fifth of the time
json.loads takes with the hooks that catch them: so every document is read the fast way first,
and read again carefully only when something in it could be one of them.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic_core import from_json

MAX_DEPTH = 32
"""Arrays and objects nested in one another, at most (a batch line needs 6)."""
MAX_INTEGER_DIGITS = 4300
"""Digits of one integer, at most: Python's own limit on converting text to int. (A float of
any length is read: one too large for a double is infinite, and its field refuses it.)"""

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class JsonProblem:
    loc: Loc  # within the document: () for the document itself
    msg: str
    type: str


class JsonRefusedError(ValueError):
    def __init__(self, problems: list[JsonProblem]) -> None:
        super().__init__("; ".join(p.msg for p in problems))
        self.problems = problems


def loads(document: str | bytes) -> Any:
    """The document's value; raises JsonRefusedError naming each place the RFC or a limit
    refuses."""
    text = _text(document)
    _check_depth(text)
    value = _quick(text)
    return _careful(text) if value is _LOOK_AGAIN else value


def loads_carefully(document: str | bytes) -> Any:
    """`loads` without its quick path: the same answer, in five times the time."""
    text = _text(document)
    _check_depth(text)
    return _careful(text)


def _text(document: str | bytes) -> str:
    if isinstance(document, str):
        return document
    try:
        return document.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _whole(f"not UTF-8: byte {error.start} (0x{document[error.start]:02x}) cannot "
                     "start or continue a character", "json_invalid") from None


def _whole(msg: str, kind: str) -> JsonRefusedError:
    """A refusal of the document as a whole (its location: the body itself)."""
    return JsonRefusedError([JsonProblem((), msg, kind)])


def _check_depth(text: str) -> None:
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise _whole(f"arrays and objects are nested more than {MAX_DEPTH} deep",
                     "json_too_deep")


_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _depth(text: str) -> int:
    """How deep arrays and objects nest, brackets inside strings aside; counting stops once
    past MAX_DEPTH. On text that is not JSON it may overcount, never undercount, what a
    parser would reach before giving up."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_DEPTH:
                break
    return deepest


_LOOK_AGAIN = object()


def _quick(text: str) -> Any:
    """pydantic's parser, which refuses NaN, Infinity, lone surrogates and over-long integers
    (and some long floats) and keeps the last of duplicate keys. Every member of an object has
    its own colon, so fewer members than colons means a duplicate collapsed, or a colon inside
    a string: either way, look again."""
    try:
        value = from_json(text, allow_inf_nan=False)
    except (ValueError, TypeError):  # TypeError: a str it cannot encode (a lone surrogate)
        return _LOOK_AGAIN
    if _members(value) != text.count(":"):
        return _LOOK_AGAIN
    return value


def _members(value: Any) -> int:
    """Members of every object in the value (a loop, not recursion: this is the quick path)."""
    count, stack = 0, [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            item = item.values()
        elif type(item) is not list:
            continue
        stack.extend(v for v in item if type(v) is dict or type(v) is list)
    return count


class _Duplicated(dict[str, Any]):
    """An object that named some keys more than once (the last value kept, as json.loads does)."""

    duplicates: list[str]


class _Refused:
    def __init__(self, msg: str, kind: str) -> None:
        self.msg, self.kind = msg, kind


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) == len(pairs):
        return value
    seen: set[str] = set()
    again: dict[str, None] = {}
    for key, _ in pairs:
        if key in seen:
            again[key] = None
        seen.add(key)
    duplicated = _Duplicated(value)
    duplicated.duplicates = list(again)
    return duplicated


def _constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a JSON number", "json_not_a_number")


def _integer(literal: str) -> int | _Refused:
    digits = len(literal.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        return _Refused(f"an integer of {digits} digits: at most {MAX_INTEGER_DIGITS}",
                        "json_number_too_long")
    return int(literal)


def _careful(text: str) -> Any:
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_constant=_constant,
                           parse_int=_integer)
    except json.JSONDecodeError as error:
        raise _whole(f"malformed JSON: {error.msg} (line {error.lineno} column "
                     f"{error.colno})", "json_invalid") from None
    except RecursionError:  # not reached after _depth, but never a 500 if it were
        raise _whole("nested too deep", "json_too_deep") from None
    problems = list(_problems(value, ()))
    if problems:
        raise JsonRefusedError(problems)
    return value


def _problems(value: Any, loc: Loc) -> Iterator[JsonProblem]:
    if isinstance(value, _Refused):
        yield JsonProblem(loc, value.msg, value.kind)
    elif isinstance(value, str):
        yield from _surrogates(value, loc)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _problems(item, (*loc, index))
    elif isinstance(value, dict):
        yield from _object_problems(value, loc)


def _object_problems(value: dict[str, Any], loc: Loc) -> Iterator[JsonProblem]:
    for key in getattr(value, "duplicates", ()):
        yield JsonProblem((*loc, _shown(key)), f"key {key!r} appears more than once in this "
                          "object", "duplicate_key")
    for key, item in value.items():
        yield from _surrogates(key, loc, what="a key")
        yield from _problems(item, (*loc, _shown(key)))


def _shown(key: str) -> str:
    """A key as a location may name it: a lone surrogate cannot be written in UTF-8, so
    not in the answer either; it is shown escaped."""
    return key.encode("utf-8", "backslashreplace").decode() if _SURROGATE.search(key) else key


_SURROGATE = re.compile("[\ud800-\udfff]")


def _surrogates(text: str, loc: Loc, what: str = "a string") -> Iterator[JsonProblem]:
    found = _SURROGATE.search(text)
    if found:
        yield JsonProblem(loc, f"{what} holds a lone surrogate (U+{ord(found.group()):04X}), "
                               "which is not a character", "json_lone_surrogate")
