"""Plain reads: a record as of a valid date and as known at a record time, its history, and
the global event feed."""

from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Reader
from api.problems import Problem, invalid
from domain.ids import is_record_id
from domain.kinds import KINDS, KindSpec
from infra.seal import format_time
from infra.service import ReadService, RecordView, entry_json

AsOf = Annotated[date | None, Query(description="valid date (YYYY-MM-DD); default today")]
KnownAt = Annotated[datetime | None, Query(description="record time (RFC 3339); default now")]


MAX_POSITION = 2**63 - 1  # positions are 64-bit integers in both databases


def resolve_times(as_of: date | None, known_at: datetime | None, *, name: str = "known_at"
                  ) -> tuple[date, datetime]:
    now = datetime.now(UTC)
    if known_at is not None:
        if known_at.tzinfo is None:
            known_at = known_at.replace(tzinfo=UTC)  # RFC 3339 wants an offset; read none as UTC
        try:
            known_at = known_at.astimezone(UTC)
        except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
            raise invalid([{"loc": ["query", name], "field": f"query.{name}",
                            "msg": "the timestamp is out of range in UTC",
                            "type": "datetime_range"}]) from None
    return as_of or now.date(), known_at or now


def _check_id(spec: KindSpec, record_id: str) -> None:
    if not is_record_id(record_id):
        raise Problem(404, "Not found", f"no {spec.kind.replace('_', ' ')} with id {record_id!r}")


def record_json(view: RecordView) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": view.kind,
        "id": view.record_id,
        "as_of": view.as_of.isoformat(),
        "known_at": format_time(view.known_at),
        "position": view.position,
        "version": view.version,
        "lifecycle": view.lifecycle,
        "data": view.facts,
        "ended_from": view.ended_from.isoformat() if view.ended_from else None,
        "recorded_at": format_time(view.last_recorded_at),
    }
    if view.kind == "lease":
        ddf = view.due_diligence_from
        body["due_diligence_from"] = ddf.isoformat() if ddf else None
    return body


def _record_handler(spec: KindSpec) -> Any:
    async def read(request: Request, record_id: str, _: Reader, as_of: AsOf = None,
                   known_at: KnownAt = None) -> dict[str, Any]:
        _check_id(spec, record_id)
        day, moment = resolve_times(as_of, known_at)
        reads: ReadService = request.app.state.reads
        view = await run_in_threadpool(reads.record, spec.kind, record_id, day, moment)
        return record_json(view)

    return read


def _history_handler(spec: KindSpec) -> Any:
    async def history(request: Request, record_id: str, _: Reader) -> dict[str, Any]:
        _check_id(spec, record_id)
        reads: ReadService = request.app.state.reads
        entries = await run_in_threadpool(reads.history, spec.kind, record_id)
        return {"kind": spec.kind, "id": record_id, "events": [entry_json(e) for e in entries]}

    return history


async def read_events(
    request: Request,
    _: Reader,
    after: Annotated[int, Query(ge=0, le=MAX_POSITION)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The global log in position order, from `after` (exclusive)."""
    store = request.app.state.container.store
    entries = await run_in_threadpool(store.entries, after=after, limit=limit)
    return {
        "events": [entry_json(e) for e in entries],
        "next_after": entries[-1].position if len(entries) == limit else None,
    }


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1", tags=["reads"])
    router.add_api_route("/events", read_events, methods=["GET"], name="read_events")
    for spec in KINDS.values():
        label = spec.kind.replace("_", " ")
        router.add_api_route(
            f"/{spec.collection}/{{record_id}}", _record_handler(spec), methods=["GET"],
            name=f"read_{spec.kind}", summary=f"A {label} as of a date, as known at a time",
        )
        router.add_api_route(
            f"/{spec.collection}/{{record_id}}/history", _history_handler(spec),
            methods=["GET"], name=f"read_{spec.kind}_history",
            summary=f"A {label}'s events with positions and hashes",
        )
    app.include_router(router)
