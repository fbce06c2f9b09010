"""Posture, residency, timelines and restatements of api.md."""

import asyncio
import time
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Reader
from api.problems import Problem, invalid
from api.proofs import with_proofs
from api.reads import AsOf, KnownAt, resolve_times
from domain.evaluator import Finding, Posture, Processing
from domain.ids import is_record_id
from domain.types import Status
from infra.posture import MAX_WAIT_SECONDS, Moment, PostureService, ProjectionBehindError
from infra.seal import format_time

MinPosition = Annotated[int | None, Query(ge=0, description=(
    "wait (up to 5 s, then 503 with Retry-After) until the read models have reached this "
    "position; a position beyond the log's head is a 422"))]


WithProofs = Annotated[bool, Query(description=(
    "add the signed checkpoint of the Merkle tree and an inclusion proof of every evidence "
    "position"))]


def finding_json(f: Finding) -> dict[str, Any]:
    return {
        "subject_type": f.subject_type,
        "subject_id": f.subject_id,
        "regulation_id": f.regulation_id,
        "citation": f.citation,
        "status": f.status.value,
        "valid_from": f.valid_from.isoformat(),
        "valid_to": f.valid_to.isoformat() if f.valid_to else None,
        "explanation": f.explanation,
        "evidence": list(f.evidence),
    }


def _moment_json(m: Moment) -> dict[str, Any]:
    return {"as_of": m.as_of.isoformat(), "known_at": format_time(m.known_at),
            "position": m.position}


def posture_json(p: Posture, m: Moment) -> dict[str, Any]:
    return {"firm_id": p.firm_id, **_moment_json(m), "status": p.status.value,
            "findings": [finding_json(f) for f in p.findings]}


def _service(request: Request) -> PostureService:
    service: PostureService = request.app.state.posture
    return service


def _firm_id(firm_id: str) -> str:
    if not is_record_id(firm_id):
        raise Problem(404, "Not found", f"no firm with id {firm_id!r}")
    return firm_id


# How often a read-your-writes wait looks at the read models' position: soon, then less often.
_FIRST_LOOK, _LATEST_LOOK = 0.01, 0.2


async def _moment(service: PostureService, as_of: date | None, known_at: datetime | None,
                  min_position: int | None) -> Moment:
    if min_position is not None:
        await reach(service, min_position)
    day, moment = resolve_times(as_of, known_at)
    return await run_in_threadpool(service.moment, day, moment)


async def reach(service: PostureService, min_position: int,
                timeout: float = MAX_WAIT_SECONDS) -> None:
    """Read-your-writes: wait until the read models have reached `min_position`. The wait is
    on the event loop (each look is one short query in a worker thread), so waiting requests
    hold no thread from the others; a position past the log's head is refused at once."""
    reached = await run_in_threadpool(service.projected)
    if reached >= min_position:
        return
    head = await run_in_threadpool(service.head_position)
    if min_position > head:
        raise _beyond_head(min_position, head)
    deadline = time.monotonic() + timeout
    delay = _FIRST_LOOK
    while reached < min_position:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProjectionBehindError(min_position, reached)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, _LATEST_LOOK)
        reached = await run_in_threadpool(service.projected)


def _beyond_head(min_position: int, head: int) -> Problem:
    msg = (f"min_position {min_position} is beyond the head of the log, at position {head}: "
           "no read model can reach it")
    return invalid([{"loc": ["query", "min_position"], "field": "query.min_position",
                     "msg": msg, "type": "beyond_head"}], detail=msg)


async def read_posture(request: Request, firm_id: str, _: Reader, as_of: AsOf = None,
                       known_at: KnownAt = None, min_position: MinPosition = None,
                       proofs: WithProofs = False) -> dict[str, Any]:
    """The firm's worst status on `as_of` as known at `known_at`, with its findings."""
    service = _service(request)
    moment = await _moment(service, as_of, known_at, min_position)
    await run_in_threadpool(service.check_firm, _firm_id(firm_id), moment)
    posture = await run_in_threadpool(service.posture, firm_id, moment)
    answer = posture_json(posture, moment)
    return await with_proofs(request, answer) if proofs else answer


def _processing_json(p: Processing) -> dict[str, Any]:
    return {"data_subject_country": p.data_subject_country, "processed_in": p.processed_in,
            "activity_id": p.activity_id, "status": p.status.value}


async def read_residency(request: Request, firm_id: str, _: Reader, as_of: AsOf = None,
                         known_at: KnownAt = None, min_position: MinPosition = None
                         ) -> dict[str, Any]:
    """Where the firm's personal data was processed, and its data_localisation status."""
    service = _service(request)
    moment = await _moment(service, as_of, known_at, min_position)
    await run_in_threadpool(service.check_firm, _firm_id(firm_id), moment)
    status, findings, processing = await run_in_threadpool(service.residency, firm_id, moment)
    return {"firm_id": firm_id, **_moment_json(moment), "status": status.value,
            "findings": [finding_json(f) for f in findings],
            "processing": [_processing_json(p) for p in processing]}


async def read_timeline(
    request: Request, firm_id: str, _: Reader,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: Annotated[date | None, Query()] = None,
    known_at: KnownAt = None, min_position: MinPosition = None,
) -> dict[str, Any]:
    """The posture as consecutive [valid_from, valid_to) intervals, for charts."""
    if from_ and to and to <= from_:
        raise Problem(422, "Invalid request", "to must be after from", slug="validation",
                      errors=[{"loc": ["query", "to"], "field": "query.to",
                               "msg": "to must be after from", "type": "date_order"}])
    service = _service(request)
    moment = await _moment(service, None, known_at, min_position)
    await run_in_threadpool(service.check_firm, _firm_id(firm_id), moment)
    start, end, pieces = await run_in_threadpool(service.timeline, firm_id, moment.position,
                                                 from_, to)
    return {"firm_id": firm_id, "from": start.isoformat(), "to": end.isoformat(),
            "known_at": format_time(moment.known_at), "position": moment.position,
            "intervals": [{"valid_from": a.isoformat(), "valid_to": b.isoformat(),
                           "status": s.value} for a, b, s in pieces]}


async def read_restatements(
    request: Request, firm_id: str, _: Reader,
    known_from: Annotated[datetime | None, Query()] = None,
    known_to: Annotated[datetime | None, Query()] = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Commits recorded between known_from and known_to that changed past answers."""
    service = _service(request)
    moment = await _moment(service, None, known_to, min_position)
    await run_in_threadpool(service.check_firm, _firm_id(firm_id), moment)
    after = 0
    if known_from is not None:
        known_start = resolve_times(None, known_from)[1]
        after = await run_in_threadpool(service.store.position_at, known_start)
    found = await run_in_threadpool(service.restatements, firm_id, after, moment.position)
    return {
        "firm_id": firm_id,
        "known_from": format_time(known_from) if known_from else None,
        "known_to": format_time(moment.known_at),
        "position": moment.position,
        "restatements": [{
            "position": r.position,
            "recorded_at": format_time(r.recorded_at),
            "events": r.events,
            "changes": [{"valid_from": a.isoformat(), "valid_to": b.isoformat(),
                         "before": old.value, "after": new.value}
                        for a, b, old, new in r.changes],
        } for r in found],
    }


async def read_all_postures(
    request: Request, _: Reader, as_of: AsOf = None, known_at: KnownAt = None,
    status: Annotated[Status | None, Query(description="only firms with this status")] = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Every firm's posture on `as_of` as known at `known_at` (no finding: compliant)."""
    service = _service(request)
    moment = await _moment(service, as_of, known_at, min_position)
    postures = await run_in_threadpool(_every_posture, service, moment)
    selected = [p for p in postures if status is None or p.status is status]
    return {**_moment_json(moment), "status": status.value if status else None,
            "firms": [{"firm_id": p.firm_id, "status": p.status.value,
                       "findings": [finding_json(f) for f in p.findings]} for p in selected]}


def _every_posture(service: PostureService, moment: Moment) -> list[Posture]:
    """Every firm known at the moment, in id order; a firm without findings is compliant."""
    postures = service.all_postures(moment)
    firms = sorted(service.firm_facts(moment).keys() | postures.keys())
    return [postures.get(f) or Posture(f, moment.as_of, Status.COMPLIANT, []) for f in firms]


async def list_firms(
    request: Request, _: Reader, as_of: AsOf = None, known_at: KnownAt = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="the last firm id of the previous page")
                      ] = None,
    min_position: MinPosition = None,
) -> dict[str, Any]:
    """Firms with their posture and residency status on `as_of`."""
    service = _service(request)
    moment = await _moment(service, as_of, known_at, min_position)
    page = await run_in_threadpool(_firms_page, request, service, moment, limit, cursor)
    return {**_moment_json(moment), **page}


def _firms_page(request: Request, service: PostureService, moment: Moment, limit: int,
                cursor: str | None) -> dict[str, Any]:
    firms = service.firm_facts(moment)
    ids = sorted(i for i in firms if cursor is None or i > cursor)
    chosen = ids[:limit]
    postures = service.all_postures(moment)
    rows = []
    for firm_id in chosen:
        posture = postures.get(firm_id)
        residency, _, _ = service.residency(firm_id, moment)
        rows.append({"id": firm_id, "name": firms[firm_id].get("name"),
                     "hq_country": firms[firm_id].get("hq_country"),
                     "status": posture.status.value if posture else Status.COMPLIANT.value,
                     "residency_status": residency.value})
    return {"firms": rows, "next_cursor": chosen[-1] if len(ids) > limit else None}


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1", tags=["posture"])
    router.add_api_route("/firms", list_firms, methods=["GET"], name="list_firms")
    router.add_api_route("/posture", read_all_postures, methods=["GET"],
                         name="read_all_postures")
    for suffix, handler in (("posture", read_posture), ("residency", read_residency),
                            ("timeline", read_timeline), ("restatements", read_restatements)):
        router.add_api_route(f"/firms/{{firm_id}}/{suffix}", handler, methods=["GET"],
                             name=f"read_firm_{suffix}")
    app.include_router(router)
