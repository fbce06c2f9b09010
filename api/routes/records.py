"""A record as of a valid date and as known at a record time, and its history: one row per
path, written out, each registered with the handler of its kind."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.deps import AsOf, KnownAt, Reader, Records, moment_of
from api.problems import Problem
from api.schemas import record_json
from domain.ids import is_record_id
from domain.kinds import KINDS, KindSpec
from projections.records import entry_json

router = APIRouter(prefix="/v1", tags=["reads"])

# (path, kind) of each record read; every one has its /history beside it (HISTORIES).
RECORDS: tuple[tuple[str, str], ...] = (
    ("/chip-models/{record_id}", "chip_model"),
    ("/firms/{record_id}", "firm"),
    ("/data-centres/{record_id}", "data_centre"),
    ("/regulations/{record_id}", "regulation"),
    ("/licences/{record_id}", "licence"),
    ("/leases/{record_id}", "lease"),
    ("/shipments/{record_id}", "shipment"),
    ("/processing-activities/{record_id}", "processing_activity"),
)
HISTORIES: tuple[tuple[str, str], ...] = (
    ("/chip-models/{record_id}/history", "chip_model"),
    ("/firms/{record_id}/history", "firm"),
    ("/data-centres/{record_id}/history", "data_centre"),
    ("/regulations/{record_id}/history", "regulation"),
    ("/licences/{record_id}/history", "licence"),
    ("/leases/{record_id}/history", "lease"),
    ("/shipments/{record_id}/history", "shipment"),
    ("/processing-activities/{record_id}/history", "processing_activity"),
)

Handler = Callable[..., Coroutine[Any, Any, Any]]


def _check_id(spec: KindSpec, record_id: str) -> None:
    if not is_record_id(record_id):
        raise Problem(404, "Not found", f"no {spec.kind.replace('_', ' ')} with id {record_id!r}")


def _record_handler(spec: KindSpec) -> Handler:
    async def read(record_id: str, _: Reader, reads: Records, as_of: AsOf = None,
                   known_at: KnownAt = None) -> JSONResponse:
        _check_id(spec, record_id)
        view = await run_in_threadpool(reads.record, spec.kind, record_id,
                                       moment_of(as_of, known_at))
        # The version is the tag an If-Match on the record's next append names.
        return JSONResponse(record_json(view), headers={"ETag": f'"{view.version}"'})

    return read


def _history_handler(spec: KindSpec) -> Handler:
    async def history(record_id: str, _: Reader, reads: Records) -> dict[str, Any]:
        _check_id(spec, record_id)
        entries = await run_in_threadpool(reads.history, spec.kind, record_id)
        return {"kind": spec.kind, "id": record_id, "events": [entry_json(e) for e in entries]}

    return history


for _path, _kind in RECORDS:
    router.add_api_route(_path, _record_handler(KINDS[_kind]), methods=["GET"],
                         name=f"read_{_kind}", summary=f"A {_kind.replace('_', ' ')} as of a "
                         "date, as known at a time")
for _path, _kind in HISTORIES:
    router.add_api_route(_path, _history_handler(KINDS[_kind]), methods=["GET"],
                         name=f"read_{_kind}_history",
                         summary=f"A {_kind.replace('_', ' ')}'s events with positions and hashes")
