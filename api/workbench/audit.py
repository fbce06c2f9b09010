"""Audit pages: a replay against the read model and what-ifs (auditor, admin); the log's
integrity; webhook endpoints and their deliveries (admin). Each calls the service its API
route calls, and shows the API's own answer."""

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.appends import parse_batch_line
from api.deps import resolve_times
from api.problems import Problem
from api.routes.replays import replay_json
from api.workbench.web import SignedIn, checked_form, page, see_other, url
from domain.errors import InvalidRecordError
from infra.checkpoints import CheckpointStore
from infra.keys import Permission
from infra.replay import ReplayService
from infra.seal import ALGORITHM, GENESIS_HASH, format_time
from infra.service import ReadService
from infra.store import LogStore
from infra.webhooks import Webhooks

router = APIRouter(prefix="/ui", include_in_schema=False)
DELIVERY_STATES = ("pending", "succeeded", "failed", "dead")


@router.get("/audit")
async def audit_page(request: Request, session: SignedIn) -> Response:
    """The replay and what-if forms."""
    session_may = session.principal.may(Permission.AUDIT)
    if not session_may:
        raise Problem(403, "Forbidden", "the audit pages are for auditors and admins")
    return page("audit.html", session, result=None, form={}, errors=[])


def _parsed(form: dict[str, str]) -> tuple[date | None, datetime | None, list[str], list[Any]]:
    def when(name: str, kind: type[date] | type[datetime]) -> Any:
        text = form.get(name, "").strip()
        try:
            return kind.fromisoformat(text.replace("Z", "+00:00")) if text else None
        except ValueError:
            raise Problem(422, "Invalid request", f"{name} {text!r} is not a valid "
                          f"{kind.__name__}", slug="validation") from None

    firms = [f.strip() for f in form.get("firm_ids", "").replace(",", " ").split() if f.strip()]
    lines = [ln for ln in form.get("hypothetical", "").splitlines() if ln.strip()]
    return (when("as_of", date), when("known_at", datetime), firms,
            [parse_batch_line(ln, n) for n, ln in enumerate(lines, start=1)])


@router.post("/audit")
async def run_replay(request: Request, session: SignedIn) -> Response:
    """Replay the raw log for (as_of, known_at, firms), with what-if lines if given."""
    form = await checked_form(request, session)
    if not session.principal.may(Permission.AUDIT):
        raise Problem(403, "Forbidden", "the audit pages are for auditors and admins")
    try:
        as_of, known_at, firms, hypothetical = _parsed(form)
    except Problem as problem:
        return page("audit.html", session, 422, result=None, form=form,
                    errors=problem.errors or [{"msg": problem.detail}])
    day, moment = resolve_times(as_of, known_at)
    service: ReplayService = request.app.state.replays
    try:
        result = await run_in_threadpool(service.replay, day, moment, firms or None,
                                         hypothetical)
    except InvalidRecordError as error:
        return page("audit.html", session, 422, result=None, form=form,
                    errors=[{"msg": p.msg} for p in error.problems])
    return page("audit.html", session, result=replay_json(result), form=form, errors=[])


def _integrity(store: LogStore) -> dict[str, Any]:
    head = store.head()
    latest = CheckpointStore(store).latest()
    return {"head_position": head.position if head else 0,
            "head_hash": head.hash if head else GENESIS_HASH,
            "head_recorded_at": format_time(head.recorded_at) if head else None,
            "algorithm": ALGORITHM, "checkpoint": latest.to_json() if latest else None}


@router.get("/integrity")
async def integrity_page(request: Request, session: SignedIn) -> Response:
    """The head of the log, the latest signed checkpoint, and a verify button."""
    store: LogStore = request.app.state.container.store
    shown = await run_in_threadpool(_integrity, store)
    return page("integrity.html", session, integrity=shown, verification=None)


@router.post("/integrity")
async def verify_page(request: Request, session: SignedIn) -> Response:
    """Recompute the hash chain from position 1 and show the result."""
    await checked_form(request, session)
    if not session.principal.may(Permission.AUDIT):
        raise Problem(403, "Forbidden", "verification is for auditors and admins")
    reads: ReadService = request.app.state.reads
    result = await run_in_threadpool(reads.verify)
    store: LogStore = request.app.state.container.store
    shown = await run_in_threadpool(_integrity, store)
    return page("integrity.html", session, integrity=shown, verification=result)


def _webhooks_view(hooks: Webhooks) -> list[dict[str, Any]]:
    shown = []
    for endpoint in hooks.endpoints():
        by_state = {s: hooks.deliveries(endpoint.endpoint_id, s, 50, None)
                    for s in DELIVERY_STATES}
        shown.append({"endpoint": endpoint, "deliveries": by_state})
    return shown


@router.get("/webhooks")
async def webhooks_page(request: Request, session: SignedIn) -> Response:
    """Endpoints, their deliveries by state with every attempt, and recovery."""
    if not session.principal.may(Permission.ADMIN):
        raise Problem(403, "Forbidden", "the webhooks page is for admins")
    hooks: Webhooks = request.app.state.webhooks
    shown = await run_in_threadpool(_webhooks_view, hooks)
    return page("webhooks.html", session, endpoints=shown, requeued=request.query_params.get(
        "requeued"))


@router.post("/webhooks/{endpoint_id}/recovery")
async def recover_page(request: Request, endpoint_id: str, session: SignedIn) -> Response:
    """Queue again the endpoint's deliveries that failed or died since the given time."""
    form = await checked_form(request, session)
    if not session.principal.may(Permission.ADMIN):
        raise Problem(403, "Forbidden", "recovery is for admins")
    try:
        since = datetime.fromisoformat(form.get("since", "").replace("Z", "+00:00"))
    except ValueError:
        raise Problem(422, "Invalid request", "since must be an RFC 3339 time",
                      slug="validation") from None
    hooks: Webhooks = request.app.state.webhooks
    count = await run_in_threadpool(hooks.recover, endpoint_id,
                                    resolve_times(None, since, name="since")[1])
    return see_other(url("/ui/webhooks", requeued=f"{endpoint_id}:{count}"))
