"""A batch line is validated as it came; its answers are those of validating its body alone
(parsed, dumped again and validated as JSON), whatever the line holds."""

import json
from typing import Any

import pytest

from api.appends import _resolve_type, parse_append, parse_batch_line
from api.problems import Problem
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
]


def answer(parse: Any, line: str) -> Any:
    try:
        append = parse(line, 3)
    except Problem as problem:
        return problem.errors
    return (append.kind, append.role, append.record_id, append.body.model_dump(),
            append.body.model_fields_set)


def body_alone(line: str, number: int) -> Any:
    """The reference: the line's body validated on its own, from the parsed line."""
    where = ("body", number)
    item = json.loads(line)
    spec, role, record_id = _resolve_type(item["type"], item.get("id"), where)
    return parse_append(spec, role, json.dumps(item["body"]), record_id=record_id,
                        prefix=(*where, "body"))


@pytest.mark.parametrize("line", LINES + [json.dumps(line) for line in ledger(300)])
def test_a_line_is_answered_as_its_body_alone(line: str):
    assert answer(parse_batch_line, line) == answer(body_alone, line)
