"""Audit replays (with what-ifs) and posture diffs."""

import json
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from api import strict_json
from api.appends import parse_batch_item
from api.bodies import read_body, validated
from api.deps import Auditor, Postures, Reader, Replays, check_firm_id, moment_of, waited
from api.openapi import request_body
from api.problems import Problem, field_errors, invalid, json_errors, pydantic_errors
from api.schemas import finding_json, processing_json
from domain.errors import FieldProblem, InvalidRecordError
from domain.evaluator import FindingsDiff, diff_findings
from domain.ids import record_uuid
from domain.times import format_time
from domain.types import RecordId
from infra.replay import FirmAnswer, Replay, ReplayService
from projections.views import Reading

router = APIRouter(prefix="/v1", tags=["audit"])

MAX_HYPOTHETICAL = 1000


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    as_of: date | None = None
    known_at: datetime | None = None
    firm_ids: list[RecordId] | None = Field(default=None, max_length=1000)
    hypothetical: list[dict[str, Any]] = Field(default_factory=list,
                                               max_length=MAX_HYPOTHETICAL)


def answer_json(firm_id: str, answer: FirmAnswer) -> dict[str, Any]:
    return {
        "firm_id": firm_id,
        "status": answer.posture.status.value,
        "findings": [finding_json(f) for f in answer.posture.findings],
        "residency": {
            "status": answer.residency_status.value,
            "processing": [processing_json(p) for p in answer.processing],
        },
    }


def diff_json(diff: FindingsDiff) -> dict[str, Any]:
    return {
        "added": [finding_json(f) for f in diff.added],
        "removed": [finding_json(f) for f in diff.removed],
        "changed": [{"before": finding_json(a), "after": finding_json(b)}
                    for a, b in diff.changed],
    }


def replay_json(result: Replay) -> dict[str, Any]:
    body: dict[str, Any] = {
        "as_of": result.as_of.isoformat(),
        "known_at": format_time(result.known_at),
        "position": result.position,
        "events_replayed": result.events_replayed,
        "consistent_with_projections": result.consistent_with_projections,
        "projection_position": result.projection_position,
        "differences": [{
            "firm_id": d.firm_id, "subject_type": d.key[0], "subject_id": d.key[1],
            "regulation_id": d.key[2],
            "replayed": finding_json(d.replayed) if d.replayed else None,
            "projected": finding_json(d.projected) if d.projected else None,
        } for d in result.differences],
        "firms": [answer_json(f, a) for f, a in result.firms.items()],
        # Left out of their firm's answer (and of the comparison): their evaluation raised.
        "failed_subjects": [{"subject_type": f.subject.kind, "subject_id": f.subject.record_id,
                             "firm_id": f.firm_id, "reason": f.reason}
                            for f in result.failed_subjects],
    }
    if result.baseline is not None:
        body["hypothetical"] = {
            "events": result.hypothetical_events,
            "changes": [{
                "firm_id": firm,
                "status_before": result.baseline[firm].posture.status.value,
                "status_after": result.firms[firm].posture.status.value,
                **diff_json(diff_findings(result.baseline[firm].posture.findings,
                                          result.firms[firm].posture.findings)),
            } for firm in result.firms],
        }
    return body


@router.post("/replays", name="create_replay", openapi_extra=request_body(ReplayRequest))
async def create_replay(request: Request, _: Auditor, service: Replays) -> dict[str, Any]:
    """Recompute posture and residency from the raw log alone; with `hypothetical` events,
    what the answer would be if they were recorded (they never are)."""
    raw = await read_body(request) or b"{}"
    try:
        ask = validated(ReplayRequest, raw, strict_json.loads(raw))
    except strict_json.JsonRefusedError as refused:
        raise invalid(_numbered(json_errors(refused))) from None
    except ValidationError as error:
        raise invalid(_numbered(pydantic_errors(error))) from None
    errors, appends = [], []
    for number, line in enumerate(ask.hypothetical, start=1):
        try:  # read strictly with the whole body already: its JSON again, for its model
            appends.append(parse_batch_item(line, json.dumps(line), number))
        except Problem as problem:
            errors += [{**e, "loc": ["body", "hypothetical", *e["loc"][1:]],
                        "field": ".".join(map(str, ["body", "hypothetical", *e["loc"][1:]]))}
                       for e in problem.errors]
    if errors:
        raise invalid(errors)
    moment = moment_of(ask.as_of, ask.known_at)
    try:
        result = await run_in_threadpool(service.replay, moment.as_of, moment.known_at,
                                         ask.firm_ids, appends)
    except InvalidRecordError as error:
        raise invalid(_hypothetical_problems(error.problems, len(appends))) from None
    unknown = sorted(set(ask.firm_ids or ()) - _known_firms(service, result))
    if unknown:
        raise invalid([{"loc": ["body", "firm_ids"], "field": "body.firm_ids",
                        "msg": f"no firm with id {', '.join(map(repr, unknown))} as known at "
                               f"{format_time(moment.known_at)}", "type": "unknown_reference"}])
    return replay_json(result)


def _numbered(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Hypothetical records are named by their place in the list, from 1, as when refused by
    their own validation; `strict_json` and pydantic count list items from 0."""
    for entry in errors:
        loc = entry["loc"]
        if loc[1:2] == ["hypothetical"] and len(loc) > 2 and isinstance(loc[2], int):
            entry["loc"] = [*loc[:2], loc[2] + 1, *loc[3:]]
            entry["field"] = ".".join(map(str, entry["loc"]))
    return errors


def _hypothetical_problems(problems: list[FieldProblem], count: int) -> list[dict[str, Any]]:
    """Name a refused hypothetical record by its place in the list, as a refused parse does:
    body.hypothetical.<n>.body.<field>. The Ledger names the append's 1-based index only when
    there is more than one."""
    named = []
    for problem in problems:
        number, loc = (problem.loc[0], problem.loc[1:]) if count > 1 else (1, problem.loc)
        named.append(FieldProblem(("hypothetical", number, "body", *loc), problem.msg,
                                  problem.type))
    return field_errors(named)


def _known_firms(service: ReplayService, result: Replay) -> set[str]:
    return {f for f in result.firms
            if service.store.entries_for(record_uuid("firm", f), upto=result.position)}


@router.get("/firms/{firm_id}/posture/diff", name="read_posture_diff")
async def read_posture_diff(
    firm_id: str, _: Reader, service: Postures,
    from_as_of: Annotated[date | None, Query()] = None,
    to_as_of: Annotated[date | None, Query()] = None,
    from_known_at: Annotated[datetime | None, Query()] = None,
    to_known_at: Annotated[datetime | None, Query()] = None,
    min_position: Annotated[int | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """A firm's posture between two dates, or between two record times for one date (what a
    restatement changed): added, removed and changed findings."""
    check_firm_id(firm_id)
    await waited(service, min_position)
    start = moment_of(from_as_of, from_known_at)
    end = moment_of(to_as_of or from_as_of, to_known_at)
    (first, before), (last, after) = await run_in_threadpool(service.posture_diff, firm_id,
                                                             start, end)
    return {"firm_id": firm_id, "from": _side(first, before.status.value),
            "to": _side(last, after.status.value),
            **diff_json(diff_findings(before.findings, after.findings))}


def _side(reading: Reading, status: str) -> dict[str, Any]:
    return {"as_of": reading.as_of.isoformat(), "known_at": format_time(reading.known_at),
            "position": reading.position, "status": status}
