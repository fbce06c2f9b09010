"""Posture, residency, timelines and restatements of api.md, and the firm list: each route
parses, makes one call to projections/posture.py in a worker thread, and maps its answer."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from api.cursors import decode_cursor, decode_key_cursor, encode_cursor
from api.deps import (
    Certify,
    FirmMoment,
    KnownMoment,
    Postures,
    Reader,
    RestatementsMoment,
    Span,
    check_firm_id,
    moment_of,
)
from api.schemas import finding_json, posture_json, processing_json, reading_json
from domain.times import format_time
from domain.types import Status
from projections.posture import Restatement

router = APIRouter(prefix="/v1", tags=["posture"])
WithProofs = Annotated[bool, Query(description=(
    "add the signed checkpoint of the Merkle tree and an inclusion proof of every evidence "
    "position"))]


@router.get("/firms", name="list_firms")
async def list_firms(
    _: Reader, service: Postures, moment: FirmMoment,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="the next_cursor of the previous page")
                      ] = None,
) -> dict[str, Any]:
    """Firms with their posture and residency status on `as_of`."""
    after = decode_cursor(cursor, "firm")
    reading, page = await run_in_threadpool(service.firms_page, moment, limit, after)
    rows = [{"id": f.firm_id, "name": f.facts.get("name"), "hq_country": f.facts.get("hq_country"),
             "status": f.status.value, "residency_status": f.residency_status.value}
            for f in page.firms]
    return {**reading_json(reading), "firms": rows,
            "next_cursor": encode_cursor("firm", page.next_cursor) if page.next_cursor else None}


@router.get("/posture", name="read_all_postures")
async def read_all_postures(
    _: Reader, service: Postures, moment: FirmMoment,
    status: Annotated[Status | None, Query(description="only firms with this status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="firms a page")] = 100,
    cursor: Annotated[str | None, Query(description="the next_cursor of the previous page")
                      ] = None,
) -> dict[str, Any]:
    """Every firm's posture on `as_of` as known at `known_at` (no finding: compliant), a page
    of firms at a time, with how many firms have each status."""
    after = decode_cursor(cursor, "posture")
    reading, page = await run_in_threadpool(service.postures_page, moment, limit, after, status)
    return {**reading_json(reading), "status": status.value if status else None,
            "counts": _counts(page.counts),
            "firms": [{"firm_id": p.firm_id, "status": p.status.value,
                       "findings": [finding_json(f) for f in p.findings]} for p in page.postures],
            "next_cursor": encode_cursor("posture", page.next_after) if page.next_after else None}


@router.get("/firms/{firm_id}/posture", name="read_firm_posture")
async def read_posture(
    firm_id: str, _: Reader, service: Postures, moment: FirmMoment, certifier: Certify,
    proofs: WithProofs = False,
    limit: Annotated[int, Query(ge=1, le=1000, description="findings a page")] = 100,
    cursor: Annotated[str | None, Query(description="the next_cursor of the previous page")
                      ] = None,
) -> dict[str, Any]:
    """The firm's worst status on `as_of` as known at `known_at`, the count of its findings
    by status, and a page of them in (subject_type, subject_id, regulation_id) order (and
    with `proofs`, the Merkle tree's checkpoint and each evidence event's inclusion proof)."""
    scope = f"posture:{check_firm_id(firm_id)}"
    after = decode_key_cursor(cursor, scope)
    reading, page = await run_in_threadpool(service.firm_posture_page, firm_id, moment, limit,
                                            after)
    more = encode_cursor(scope, page.next_after) if page.next_after else None
    answer = {**posture_json(page.posture, reading), "counts": _counts(page.counts),
              "next_cursor": more}
    if proofs:
        answer["proofs"] = await run_in_threadpool(certifier.proofs, answer)
    return answer


def _counts(found: dict[str, int]) -> dict[str, int]:
    """Every status, zero when no finding has it."""
    return {s.value: found.get(s.value, 0) for s in Status}


@router.get("/firms/{firm_id}/residency", name="read_firm_residency")
async def read_residency(firm_id: str, _: Reader, service: Postures, moment: FirmMoment
                         ) -> dict[str, Any]:
    """Where the firm's personal data was processed, and its data_localisation status."""
    reading, residency = await run_in_threadpool(service.firm_residency,
                                                 check_firm_id(firm_id), moment)
    return {"firm_id": firm_id, **reading_json(reading), "status": residency.status.value,
            "findings": [finding_json(f) for f in residency.findings],
            "processing": [processing_json(p) for p in residency.processing]}


@router.get("/firms/{firm_id}/timeline", name="read_firm_timeline")
async def read_timeline(firm_id: str, _: Reader, service: Postures, span: Span,
                        moment: KnownMoment) -> dict[str, Any]:
    """The posture as consecutive [valid_from, valid_to) intervals, for charts."""
    reading, found = await run_in_threadpool(service.firm_timeline, check_firm_id(firm_id),
                                             moment, *span)
    return {"firm_id": firm_id, "from": found.start.isoformat(), "to": found.end.isoformat(),
            "known_at": format_time(reading.known_at), "position": reading.position,
            "intervals": [{"valid_from": a.isoformat(), "valid_to": b.isoformat(),
                           "status": s.value} for a, b, s in found.intervals]}


@router.get("/firms/{firm_id}/restatements", name="read_firm_restatements")
async def read_restatements(
    firm_id: str, _: Reader, service: Postures, moment: RestatementsMoment,
    known_from: Annotated[datetime | None, Query()] = None,
) -> dict[str, Any]:
    """Commits recorded between known_from and known_to that changed past answers."""
    check_firm_id(firm_id)
    start = moment_of(None, known_from).known_at if known_from is not None else None
    reading, found = await run_in_threadpool(service.firm_restatements, firm_id, start, moment)
    return {"firm_id": firm_id, "known_from": format_time(known_from) if known_from else None,
            "known_to": format_time(reading.known_at), "position": reading.position,
            "restatements": [_restatement_json(r) for r in found]}


def _restatement_json(r: Restatement) -> dict[str, Any]:
    return {"position": r.position, "recorded_at": format_time(r.recorded_at), "events": r.events,
            "changes": [{"valid_from": a.isoformat(), "valid_to": b.isoformat(),
                         "before": old.value, "after": new.value}
                        for a, b, old, new in r.changes]}
