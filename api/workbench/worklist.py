"""The worklist: firms by worst status on a date, what needs review first."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import resolve_times
from api.workbench.web import MOMENT, SignedIn, Times, optional, page
from domain.evaluator import Posture
from domain.types import Status
from infra.posture import Moment, PostureService
from infra.reviews import Review, ReviewService

PAGE_SIZE = 25
router = APIRouter(prefix="/ui", include_in_schema=False)


@dataclass(frozen=True)
class WorkItem:
    firm_id: str
    name: str
    status: Status
    violations: int
    attentions: int
    unreviewed: int


def needs_review(posture: Posture, latest: dict[tuple[str, str, str], Review]) -> int:
    """Findings that are not compliant and have no review, or only a stale one."""
    return sum(1 for f in posture.findings if f.status is not Status.COMPLIANT
               and (f.key not in latest or latest[f.key].stale))


def work_items(posture: PostureService, reviews: ReviewService, moment: Moment,
               search: str) -> list[WorkItem]:
    firms = posture.firm_facts(moment)
    postures = posture.all_postures(moment)
    wanted = search.casefold()
    items = []
    for firm_id, facts in firms.items():
        name = str(facts.get("name") or "")
        if wanted and wanted not in firm_id.casefold() and wanted not in name.casefold():
            continue
        p = postures.get(firm_id) or Posture(firm_id, moment.as_of, Status.COMPLIANT, [])
        latest = reviews.latest_by_finding(firm_id, upto=moment.position)
        items.append(WorkItem(firm_id, name, p.status,
                              sum(f.status is Status.VIOLATION for f in p.findings),
                              sum(f.status is Status.ATTENTION for f in p.findings),
                              needs_review(p, latest)))
    return sorted(items, key=lambda i: (-i.status.rank, -i.unreviewed, -i.violations,
                                        -i.attentions, i.firm_id))


def restated_since(posture: PostureService, firm_ids: list[str], since: datetime,
                   moment: Moment) -> dict[str, int]:
    after = posture.store.position_at(since)
    return {f: len(posture.restatements(f, after, moment.position)) for f in firm_ids}


@router.get("/")
async def worklist(
    request: Request, session: SignedIn, times: Times,
    since: Annotated[str, Query(max_length=60, description="count restatements from")] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    page_number: Annotated[int, Query(alias="page", ge=1, le=100_000)] = 1,
) -> Response:
    """Firms ordered by worst status on `as_of`, unreviewed findings first."""
    as_of, known_at = times.as_of, times.known_at
    service: PostureService = request.app.state.posture
    reviews: ReviewService = request.app.state.reviews
    day, moment_at = resolve_times(as_of, known_at)
    moment = await run_in_threadpool(service.moment, day, moment_at)
    items = await run_in_threadpool(work_items, service, reviews, moment, q.strip())
    shown = items[(page_number - 1) * PAGE_SIZE: page_number * PAGE_SIZE]
    since_moment = optional(MOMENT, since, "since")
    since_at = resolve_times(None, since_moment, name="since")[1] if since_moment else \
        moment.known_at - timedelta(days=30)
    restated = await run_in_threadpool(restated_since, service, [i.firm_id for i in shown],
                                       since_at, moment)
    return page("worklist.html", session, items=shown, restated=restated, moment=moment,
                as_of=as_of, known_at=known_at, since=since_at, q=q, page=page_number,
                more=len(items) > page_number * PAGE_SIZE, total=len(items),
                today=date.today())
