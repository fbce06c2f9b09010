"""POST /v1/reviews and GET /v1/firms/{id}/reviews: finding reviews over HTTP (the workbench's
review form records through the same service)."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import parse_body, read_body
from api.deps import MinPosition, Reader, reach, require, resolve_times
from api.openapi import request_body
from api.problems import Problem
from domain.bodies import ReviewDecision
from domain.ids import is_record_id
from domain.times import format_time
from infra.keys import Permission, Principal
from infra.reviews import Review, ReviewService

Reviewer = Annotated[Principal, Depends(require(Permission.REVIEW))]
router = APIRouter(prefix="/v1", tags=["reviews"])


def review_json(r: Review) -> dict[str, Any]:
    subject_type, subject_id, regulation_id = r.key
    return {"id": r.review_id, "firm_id": r.firm_id, "subject_type": subject_type,
            "subject_id": subject_id, "regulation_id": regulation_id, "decision": r.decision,
            "reason": r.reason, "reviewed_position": r.reviewed_position,
            "position": r.position, "recorded_at": format_time(r.recorded_at),
            "recorded_by": r.recorded_by.to_json(), "stale": r.stale}


def reviews(request: Request) -> ReviewService:
    service: ReviewService = request.app.state.reviews
    return service


@router.post("/reviews", name="create_review", status_code=201,
             openapi_extra=request_body(ReviewDecision))
async def create_review(request: Request, principal: Reviewer) -> JSONResponse:
    """Record a reviewer's decision on a finding, as a FindingReviewed event."""
    decision = parse_body(ReviewDecision, await read_body(request))
    answer = await run_in_threadpool(reviews(request).record, decision,
                                     recorded_by=principal.recorded_by)
    return JSONResponse(answer.body, status_code=answer.status)


@router.get("/firms/{firm_id}/reviews", name="read_firm_reviews")
async def list_reviews(request: Request, firm_id: str, _: Reader,
                       min_position: MinPosition = None) -> dict[str, Any]:
    """The firm's reviews, each `stale` once a later event changed its finding."""
    service = reviews(request)
    if min_position is not None:
        await reach(service.posture, min_position)
    if not is_record_id(firm_id):
        raise Problem(404, "Not found", f"no firm with id {firm_id!r}")
    moment = await run_in_threadpool(service.posture.moment, *resolve_times(None, None))
    await run_in_threadpool(service.posture.check_firm, firm_id, moment)
    found = await run_in_threadpool(service.reviews_of, firm_id)
    return {"firm_id": firm_id, "position": moment.position,
            "reviews": [review_json(r) for r in found]}

