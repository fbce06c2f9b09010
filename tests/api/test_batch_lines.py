"""A batch line is validated as it came; its answers are those of validating its body alone
(read carefully by strict_json, dumped again and validated as JSON), whatever the line holds."""

import json
from typing import Any

import pytest

from api import strict_json
from api.appends import _err, _resolve_type, parse_batch_line, validate_alone
from api.problems import Problem, invalid, json_errors
from bench.synthetic import ledger
from domain.application import Append

FIRM = '{"id": "a", "name": "A", "hq_country": "SG"}'
LINES = [
    '{"type": "firms", "body": ' + FIRM + "}",
    '{"type": "firms", "body": 5}',
    '{"type": "firms", "body": [1]}',
    '{"type": "firms", "body": null}',
    '{"type": "firms", "body": {}}',
    '{"body": ' + FIRM + ', "type": "firms"}',
    '{"type": "firms", "body": {"id": "a", "name": "A"}, "body": ' + FIRM + "}",
    '{"type": "firms", "body": {"id": "a", "id": "b", "name": "A", "hq_country": "SG"}}',
    '{"type": "firms", "body": {"id": "a", "name": "A", "hq_country": "SG", "x": NaN}}',
    '{"type": "firms", "body": {"id": "a", "name": "A\\ud800", "hq_country": "SG"}}',
    '{"type": "firms", "id": "\\udfff", "body": ' + FIRM + "}",
    '{"type": "firms", "body": {"id": "a", "name": 1E400, "hq_country": "SG"}}',
    '{"type": "firms", "body": {"id": "a", "name": "A", "hq_country": "SG", '
    '"parent_firm_id": 123456789012345678901234567890}}',
    '{"type": "firms", "body": {"id": "A!", "name": "", "hq_country": "XX"}}',
    '{"type": "firms/changes", "id": "a", "body": {"effective_from": "2025-01-01"}}',
    '{"type": "firms/a/changes", "body": {"effective_from": "2025-13-01", "name": "B"}}',
    '{"type": "leases/amendments", "id": "l", "body": {"effective_from": "2025-01-01", '
    '"chip_count": "4"}}',
    '{"type": "chip-models", "body": {"id": "c", "vendor": "V", "origin_country": "US", '
    '"tpp": 1, "performance_density": 1e-3}}',
    # the line itself malformed, or not a line
    '{"type": "firms", "body": ' + FIRM + "} x",
    '{"type": "firms", "body": {"id": "a", "name": "A\tB", "hq_country": "SG"}}',
    "\ufeff" + '{"type": "firms", "body": ' + FIRM + "}",
    '{"type": "firms", "body": ' + FIRM,
    "", "null", "[1]", '"firms"', "{'type': 'firms'}",
    '{"type": 5, "body": {}}',
    '{"type": "firms"}',
    '{"type": "firms", "body": {}, "extra": 1}',
    '{"type": "firms", "type": "firms/changes", "id": "a", "body": {"name": "B", '
    '"effective_from": "2025-01-01"}}',
    '{"type": "firms/\ud800", "body": {}}',
    '{"type": "firms", "body": {"id": "a", "name": "A\udfff", "hq_country": "SG"}}',
    '{"type": "firms/\\ud800", "body": {}}',
    '{"type": "nothing", "body": {}}',
    '{"type": "firms/changes", "body": {}}',
    '[' * 100_000 + ']' * 100_000,
    # what strict_json refuses, each in its place
    '{"type": "firms", "body": ' + '[' * 1000 + ']' * 1000 + '}',
    '{"type": "chip-models", "body": {"id": "c", "vendor": "V", "origin_country": "US", '
    '"tpp": Infinity, "performance_density": -Infinity}}',
    '{"type": "chip-models", "body": {"id": "c", "vendor": "V", "origin_country": "US", '
    '"tpp": 1e400, "performance_density": ' + '1' + '0' * 400 + '}}',
    '{"type": "chip-models", "body": {"id": "c", "vendor": "V", "origin_country": "US", '
    '"tpp": 1' + '0' * 4200 + '.5, "performance_density": 1' + '0' * 5000 + '.5}}',
    '{"type": "shipments", "body": {"id": "s", "quantity": ' + '9' * 5001 + '}}',
    '{"type": "firms", "body": {"id": "a", "name": "A", "hq_country": "SG", '
    '"name": "B", "name": "C"}}',
    '{"type": "firms", "body": {"id": "a", "name": "A\\u0000B", "hq_country": "SG"}}',
    '{"type": "firms", "body": {"id": "a", "name": "A\u0085B", "hq_country": "SG"}}',
    '{"type": "firms", "body": {"id": "a", "name": "A\u2028B", "hq_country": "SG"}}',
    '{"type": "firms", "body": {"id": "a", "name": "A", "hq_country": "SG", '
    '"x\\ud800": 1, "x\\ud800": 2}}',
    '{"type": "firms", "body": {"id": "a:b", "name": "A: B", "hq_country": "SG"}}',
    b'{"type": "firms", "body": {"id": "a", "name": "A\xff", "hq_country": "SG"}}',
    b'{"type": "firms", "body": {"id": "a", "name": "A\xed\xa0\x80", "hq_country": "SG"}}',
    '{"type": "firms", "body": {"id": "a", "name": "\ud800", "hq_country": "SG"}}'.encode(
        "utf-8", "surrogatepass"),
]


def answer(parse: Any, line: str | bytes) -> Any:
    try:
        append = parse(line, 3)
    except Problem as problem:
        return problem.errors
    return (append.kind, append.role, append.record_id, append.body.model_dump(),
            append.body.model_fields_set)


def body_alone(line: str | bytes, number: int) -> Any:
    """The reference: the line read carefully (json.loads with hooks for all strict_json
    refuses), its body validated on its own."""
    where: tuple[str | int, ...] = ("body", number)
    try:
        item = strict_json.loads_carefully(line)
    except strict_json.JsonRefusedError as refused:
        raise invalid(json_errors(refused, where)) from None
    if not isinstance(item, dict) or set(item) - {"type", "id", "body"} or "body" not in item \
            or not isinstance(item.get("type"), str):
        raise invalid([_err(where, 'expected {"type": "...", "id"?: "...", "body": {...}}',
                            "batch_line")])
    spec, role, record_id = _resolve_type(item["type"], item.get("id"), where)
    return Append(spec.kind, role, validate_alone(spec.bodies[role], item["body"], where),
                  record_id)


@pytest.mark.parametrize("line", LINES + [json.dumps(line) for line in ledger(300)])
def test_a_line_is_answered_as_its_body_alone(line: str | bytes):
    assert answer(parse_batch_line, line) == answer(body_alone, line)
