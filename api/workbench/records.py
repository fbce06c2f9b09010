"""Record pages (facts on a date, history with hashes and who recorded each event), event
pages (the raw sealed event and its neighbours) and the regulations in force."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.deps import resolve_times
from api.problems import Problem
from api.routes.events import MAX_POSITION
from api.workbench.web import SignedIn, Times, page
from domain.aggregates import TYPE_TO_TOPIC
from domain.evaluator import in_force
from domain.ids import is_record_id
from domain.kinds import ALL_KINDS
from domain.records import LoggedEvent, fold
from infra.seal import format_time
from infra.service import ReadService
from infra.store import LogEntry, LogStore
from projections.records import entry_json
from projections.views import Moment

router = APIRouter(prefix="/ui", include_in_schema=False)


def _reads(request: Request) -> ReadService:
    reads: ReadService = request.app.state.reads
    return reads


@router.get("/records/{kind}/{record_id}")
async def record_page(request: Request, kind: str, record_id: str, session: SignedIn,
                      times: Times) -> Response:
    """A record's facts on `as_of` as known at `known_at`, and its whole history."""
    as_of, known_at = times.as_of, times.known_at
    if kind not in ALL_KINDS or not is_record_id(record_id):
        raise Problem(404, "Not found", f"no {kind} with id {record_id!r}")
    day, moment = resolve_times(as_of, known_at)
    view = await run_in_threadpool(_reads(request).record, kind, record_id,
                                   Moment(day, moment))
    history = await run_in_threadpool(_reads(request).history, kind, record_id)
    return page("record.html", session, view=view, history=[entry_json(e) for e in history],
                facts=json.dumps(view.facts, indent=2, sort_keys=True), as_of=as_of,
                known_at=known_at, shown_known_at=format_time(view.known_at))


def _event(store: LogStore, position: int) -> tuple[LogEntry | None, int]:
    found = store.entries(after=position - 1, limit=1)
    head = store.head()
    entry = found[0] if found and found[0].position == position else None
    return entry, head.position if head else 0


@router.get("/events/{position}")
async def event_page(request: Request, session: SignedIn,
                     position: Annotated[int, Path(ge=1, le=MAX_POSITION)]) -> Response:
    """One sealed event: its data, who recorded it, its hash and the hash before it."""
    store: LogStore = request.app.state.container.store
    entry, head = await run_in_threadpool(_event, store, position)
    if entry is None:
        raise Problem(404, "Not found", f"no event at position {position}")
    shown = entry_json(entry)
    return page("event.html", session, event=shown, prev_hash=entry.prev_hash, head=head,
                data=json.dumps(shown["data"], indent=2, sort_keys=True),
                recorded_by=shown["recorded_by"])


def regulations_view(store: LogStore, reads: ReadService, as_of: Any, known_at: Any
                     ) -> list[dict[str, Any]]:
    position = store.position_at(known_at)
    enacted = store.entries_of_topics([TYPE_TO_TOPIC["RegulationEnacted"]], upto=position)
    shown = []
    for first in enacted:
        entries = store.entries_for(first.originator_id, upto=position)
        state = fold("regulation", first.record_id,
                     [LoggedEvent(e.type, e.data, e.position) for e in entries])
        view = reads.record("regulation", first.record_id, Moment(as_of, known_at))
        shown.append({"id": first.record_id, "facts": view.facts, "pieces": in_force(state),
                      "lifecycle": view.lifecycle, "ended_from": state.ended_from,
                      "events": entries[1:],  # its amendments and rescission
                      "rule": json.dumps(view.facts.get("rule"), indent=1, sort_keys=True)})
    return shown


@router.get("/regulations")
async def regulations_page(request: Request, session: SignedIn, times: Times) -> Response:
    """Every regulation: when it is in force (never, for some), its parameters on `as_of`,
    its amendments and rescission."""
    as_of, known_at = times.as_of, times.known_at
    day, moment = resolve_times(as_of, known_at)
    store: LogStore = request.app.state.container.store
    shown = await run_in_threadpool(regulations_view, store, _reads(request), day, moment)
    in_force_ids = {r["id"] for r in shown
                    if any(p.start <= day and (p.end is None or day < p.end)
                           for p in r["pieces"])}
    return page("regulations.html", session, regulations=shown, in_force_ids=in_force_ids,
                as_of=day, known_at=known_at)
