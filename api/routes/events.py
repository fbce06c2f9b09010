"""The global log: read it in position order, or append to it in bulk (all or nothing)."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.appends import MAX_BATCH_LINES, batch_lines, parse_batch_line
from api.bodies import NDJSON, read_body
from api.cursors import decode_cursor, encode_cursor
from api.deps import Committer, Log, Reader, Writer
from api.openapi import batch_line
from api.problems import Problem, _entry, invalid
from api.routes.appends import APPENDS, run_appends
from domain.errors import FieldProblem, InvalidRecordError
from infra.gc_pause import gc_paused
from projections.records import entry_json

router = APIRouter(prefix="/v1", tags=["events"])
# A batch line's "type": the path of its append, without the record id.
BATCH_TYPES = [path.replace("/{record_id}", "").lstrip("/") for path, _, _ in APPENDS]
MAX_POSITION = 2**63 - 1  # positions are 64-bit integers in both databases


@router.get("/events", name="read_events")
async def read_events(
    _: Reader,
    log: Log,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="the next_cursor of the previous page "
                                                    "(instead of after)")] = None,
) -> dict[str, Any]:
    """The global log in position order, from `after` (exclusive) or `cursor`."""
    if cursor is not None:
        after = decode_cursor(cursor, "events", int)
    entries = await run_in_threadpool(log.entries, after=after, limit=limit)
    last = entries[-1].position if len(entries) == limit else None
    return {
        "events": [entry_json(e) for e in entries],
        "next_after": last,  # the form before cursors: kept working
        "next_cursor": encode_cursor("events", last) if last is not None else None,
    }


@router.post("/events:batch", name="append_batch",
             summary="Append many records, all or nothing (application/x-ndjson)",
             openapi_extra={"requestBody": {"required": True, "content": {NDJSON: {
                 "schema": batch_line(BATCH_TYPES)}}}})
async def append_batch(request: Request, _: Writer, committer: Committer) -> JSONResponse:
    """Append many records in one transaction: all or nothing."""
    raw = await read_body(request, NDJSON)
    lines = batch_lines(raw)
    if not lines:
        raise invalid([_entry(("body",), "the batch is empty", "empty_batch")])
    if len(lines) > MAX_BATCH_LINES:
        raise invalid([_entry(("body",), f"at most {MAX_BATCH_LINES} lines a batch",
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
        return await run_appends(request, committer, appends, raw, batch=True)
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
        entries.append(_entry(("body", line, "body", *loc), problem.msg, problem.type))
    return entries
