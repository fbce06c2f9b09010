"""A batch line is validated as it came; its answers are those of validating its body alone
(parsed, dumped again and validated as JSON), whatever the line holds."""

import json
from typing import Any

import pytest

from api.appends import _err, _resolve_type, parse_append, parse_batch_line
from api.problems import Problem, invalid
from bench.synthetic import ledger

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
]


def answer(parse: Any, line: str) -> Any:
    try:
        append = parse(line, 3)
    except Problem as problem:
        return problem.errors
    except RecursionError:
        return "too deep"
    return (append.kind, append.role, append.record_id, append.body.model_dump(),
            append.body.model_fields_set)


def body_alone(line: str, number: int) -> Any:
    """The reference: the line parsed by json.loads, its body validated on its own."""
    where: tuple[str | int, ...] = ("body", number)
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise invalid([_err(where, f"malformed JSON: {error.msg}", "json_invalid")]) from None
    if not isinstance(item, dict) or set(item) - {"type", "id", "body"} or "body" not in item \
            or not isinstance(item.get("type"), str):
        raise invalid([_err(where, 'expected {"type": "...", "id"?: "...", "body": {...}}',
                            "batch_line")])
    spec, role, record_id = _resolve_type(item["type"], item.get("id"), where)
    return parse_append(spec, role, json.dumps(item["body"]), record_id=record_id,
                        prefix=(*where, "body"))


@pytest.mark.parametrize("line", LINES + [json.dumps(line) for line in ledger(300)])
def test_a_line_is_answered_as_its_body_alone(line: str):
    assert answer(parse_batch_line, line) == answer(body_alone, line)
