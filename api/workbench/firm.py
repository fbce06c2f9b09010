"""The firm page: status on a date as known at a moment, its timeline, findings, residency,
restatements and reviews; the findings as CSV; the review form's target."""

import csv
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from api.deps import reach, resolve_times
from api.problems import Problem, pydantic_errors
from api.workbench.timeline import draw
from api.workbench.web import SignedIn, Times, checked_form, page, secured, see_other, url
from domain.bodies import ReviewDecision
from domain.evaluator import Finding
from domain.ids import is_record_id
from infra.posture import Moment, PostureService
from infra.reviews import DECISIONS, ReviewService, may_review
from infra.seal import format_time

router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class Step:
    """A commit that changed the firm's answers: a known-at position of the slider."""

    position: int
    known_at: str


def _services(request: Request) -> tuple[PostureService, ReviewService]:
    return request.app.state.posture, request.app.state.reviews


def _firm_id(firm_id: str) -> str:
    if not is_record_id(firm_id):
        raise Problem(404, "Not found", f"no firm with id {firm_id!r}")
    return firm_id


def steps_of(service: PostureService, firm_id: str) -> list[Step]:
    positions = service.findings.changes_between(firm_id, 0, service.projected())
    return [Step(p, format_time(service.store.entries(after=p - 1, limit=1)[0].recorded_at))
            for p in positions]


def firm_view(posture: PostureService, reviews: ReviewService, firm_id: str, moment: Moment
              ) -> dict[str, Any]:
    facts = posture.check_firm(firm_id, moment)
    start, end, pieces = posture.timeline(firm_id, moment.position, None, None)
    steps = steps_of(posture, firm_id)
    residency, residency_findings, processing = posture.residency(firm_id, moment)
    return {
        "firm_id": firm_id, "facts": facts, "moment": moment,
        "posture": posture.posture(firm_id, moment),
        "picture": draw(start, end, pieces, moment.as_of), "start": start, "end": end,
        "steps": steps, "step": max((i for i, s in enumerate(steps)
                                     if s.position <= moment.position), default=-1),
        "residency": residency, "residency_findings": residency_findings,
        "processing": processing,
        "restatements": posture.restatements(firm_id, 0, moment.position),
        "reviews": reviews.latest_by_finding(firm_id, upto=moment.position),
    }


async def _moment(request: Request, as_of: date | None, known_at: datetime | None) -> Moment:
    day, at = resolve_times(as_of, known_at)
    moment: Moment = await run_in_threadpool(request.app.state.posture.moment, day, at)
    return moment


@router.get("/firms/{firm_id}")
async def firm_page(request: Request, firm_id: str, session: SignedIn, times: Times) -> Response:
    """A firm's status on `as_of` as known at `known_at`, with the evidence behind it."""
    as_of, known_at = times.as_of, times.known_at
    moment = await _moment(request, as_of, known_at)
    view = await run_in_threadpool(firm_view, *_services(request), _firm_id(firm_id), moment)
    return page("firm.html", session, **view, as_of=as_of, known_at=known_at,
                decisions=DECISIONS)


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: a leading = + - @ would make it a formula."""
    text = "" if value is None else str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def findings_csv(findings: list[Finding]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["subject_type", "subject_id", "regulation_id", "citation", "status",
                     "valid_from", "valid_to", "explanation", "evidence"])
    for f in findings:
        writer.writerow([_cell(v) for v in (
            f.subject_type, f.subject_id, f.regulation_id, f.citation, f.status.value,
            f.valid_from.isoformat(), f.valid_to.isoformat() if f.valid_to else "",
            f.explanation, " ".join(map(str, f.evidence)))])
    return out.getvalue()


@router.get("/firms/{firm_id}/findings.csv")
async def firm_findings_csv(request: Request, firm_id: str, session: SignedIn,
                            times: Times) -> Response:
    """The firm page's findings as CSV, for the same (as_of, known_at)."""
    as_of, known_at = times.as_of, times.known_at
    service, _ = _services(request)
    moment = await _moment(request, as_of, known_at)
    await run_in_threadpool(service.check_firm, _firm_id(firm_id), moment)
    posture = await run_in_threadpool(service.posture, firm_id, moment)
    name = f"{firm_id}-findings-{moment.as_of.isoformat()}-p{moment.position}.csv"
    return secured(Response(findings_csv(posture.findings), media_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="{name}"'}))


@router.post("/firms/{firm_id}/reviews")
async def review_finding(request: Request, firm_id: str, session: SignedIn) -> Response:
    """Record the review form's decision, then show the firm again."""
    form = await checked_form(request, session)
    if not may_review(session.principal):
        raise Problem(403, "Forbidden", f"role {session.principal.role.value!r} may not "
                                        "record reviews")
    try:
        decision = ReviewDecision.model_validate(
            {**{k: form.get(k) for k in ("subject_type", "subject_id", "regulation_id",
                                         "decision", "reason")},
             "firm_id": _firm_id(firm_id),
             "reviewed_position": int(form.get("reviewed_position") or 0)}, strict=True)
    except (ValidationError, ValueError) as error:
        errors = pydantic_errors(error) if isinstance(error, ValidationError) else []
        raise Problem(422, "Invalid request", "the review form is incomplete",
                      slug="validation", errors=errors) from None
    _, reviews = _services(request)
    answer = await run_in_threadpool(reviews.record, decision,
                                     recorded_by=session.principal.recorded_by)
    await reach(reviews.posture, answer.body["position"])  # the page then shows the review
    row = form.get("row", "")
    return see_other(url(f"/ui/firms/{firm_id}", as_of=form.get("as_of"),
                         known_at=form.get("known_at")) + (f"#finding-{row}" if row.isdigit()
                                                           else ""))
