"""Every kind as a list: GET /v1/{collection}?as_of=&known_at=&limit=&cursor= and the filters
that apply to the kind, one row per path, written out. Each page is one call to
projections/lists.py in a worker thread (the firm list, with posture, is in firms.py)."""

from collections.abc import Callable, Coroutine
from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from api.cursors import decode_cursor, encode_cursor
from api.deps import AsOf, KnownAt, Lists, Reader, moment_of
from api.schemas import record_json
from domain.times import format_time
from projections.lists import ListFilter

router = APIRouter(prefix="/v1", tags=["reads"])

Limit = Annotated[int, Query(ge=1, le=1000, description="at most this many (default 100)")]
Cursor = Annotated[str | None, Query(description="the next_cursor of the previous page")]
FirmId = Annotated[str | None, Query(description="only the records of this firm")]
Lifecycle = Annotated[Literal["pending", "active", "ended"] | None,
                      Query(description="only records in this lifecycle state on as_of")]
InForce = Annotated[bool | None, Query(description="true: only regulations in force on as_of; "
                                                   "false: only those not in force")]
ExpiringBefore = Annotated[date | None, Query(description="only licences whose valid_to is "
                                                          "before this date")]


async def no_filter() -> ListFilter:
    return ListFilter()


async def by_firm(firm_id: FirmId = None) -> ListFilter:
    return ListFilter(firm_id=firm_id)


async def by_firm_and_status(firm_id: FirmId = None, status: Lifecycle = None) -> ListFilter:
    return ListFilter(firm_id=firm_id, status=status)


async def for_licences(firm_id: FirmId = None, status: Lifecycle = None,
                       expiring_before: ExpiringBefore = None) -> ListFilter:
    return ListFilter(firm_id=firm_id, status=status, expiring_before=expiring_before)


async def for_regulations(status: Lifecycle = None, in_force: InForce = None) -> ListFilter:
    return ListFilter(status=status, in_force=in_force)


Filters = Callable[..., Coroutine[Any, Any, ListFilter]]
# (path, kind, the filters it takes) of each list.
LISTS: tuple[tuple[str, str, Filters], ...] = (
    ("/chip-models", "chip_model", no_filter),
    ("/data-centres", "data_centre", no_filter),
    ("/regulations", "regulation", for_regulations),
    ("/licences", "licence", for_licences),
    ("/leases", "lease", by_firm_and_status),
    ("/shipments", "shipment", by_firm),
    ("/processing-activities", "processing_activity", by_firm_and_status),
)


def _list_handler(kind: str, filters: Filters) -> Callable[..., Coroutine[Any, Any, Any]]:
    async def read_list(_: Reader, reads: Lists, keep: Annotated[ListFilter, Depends(filters)],
                        as_of: AsOf = None, known_at: KnownAt = None, limit: Limit = 100,
                        cursor: Cursor = None) -> dict[str, Any]:
        after = decode_cursor(cursor, kind)
        moment = moment_of(as_of, known_at)
        page = await run_in_threadpool(reads.records_page, kind, moment, limit, after, keep)
        return {"kind": kind, "as_of": moment.as_of.isoformat(),
                "known_at": format_time(moment.known_at), "position": page.position,
                "records": [record_json(v) for v in page.records],
                "next_cursor": encode_cursor(kind, page.next_after) if page.next_after else None}

    return read_list


for _path, _kind, _filters in LISTS:
    router.add_api_route(_path, _list_handler(_kind, _filters), methods=["GET"],
                         name=f"list_{_kind}s", summary=f"Every {_kind.replace('_', ' ')} on "
                         "as_of as known at known_at, a page at a time")
