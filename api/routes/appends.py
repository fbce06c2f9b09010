"""Every append of api.md but the batch (api/routes/events.py): one row per path, written out,
each registered with the handler of its kind and role."""

import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import parse_append, read_body, request_fingerprint
from api.deps import Committer, Writer, recorded_by
from api.openapi import request_body
from api.problems import Problem, _entry, invalid
from domain.application import Append
from domain.ids import is_record_id
from domain.kinds import KINDS, KindSpec, Role

router = APIRouter(prefix="/v1", tags=["appends"])

# (path, kind, role): what each append path records. A later append's last segment is also
# its name in a batch line's "type" (ACTIONS), e.g. "leases/amendments".
APPENDS: tuple[tuple[str, str, Role], ...] = (
    ("/chip-models", "chip_model", Role.CREATE),
    ("/chip-models/{record_id}/corrections", "chip_model", Role.CORRECT),
    ("/firms", "firm", Role.CREATE),
    ("/firms/{record_id}/changes", "firm", Role.CHANGE),
    ("/firms/{record_id}/corrections", "firm", Role.CORRECT),
    ("/data-centres", "data_centre", Role.CREATE),
    ("/data-centres/{record_id}/changes", "data_centre", Role.CHANGE),
    ("/data-centres/{record_id}/corrections", "data_centre", Role.CORRECT),
    ("/regulations", "regulation", Role.CREATE),
    ("/regulations/{record_id}/amendments", "regulation", Role.CHANGE),
    ("/regulations/{record_id}/rescission", "regulation", Role.END),
    ("/licences", "licence", Role.CREATE),
    ("/licences/{record_id}/revocation", "licence", Role.END),
    ("/leases", "lease", Role.CREATE),
    ("/leases/{record_id}/amendments", "lease", Role.CHANGE),
    ("/leases/{record_id}/termination", "lease", Role.END),
    ("/leases/{record_id}/corrections", "lease", Role.CORRECT),
    ("/leases/{record_id}/due-diligence", "lease", Role.DILIGENCE),
    ("/shipments", "shipment", Role.CREATE),
    ("/shipments/{record_id}/corrections", "shipment", Role.CORRECT),
    ("/processing-activities", "processing_activity", Role.CREATE),
    ("/processing-activities/{record_id}/changes", "processing_activity", Role.CHANGE),
    ("/processing-activities/{record_id}/end", "processing_activity", Role.END),
    ("/processing-activities/{record_id}/corrections", "processing_activity", Role.CORRECT),
)

ACTIONS: dict[tuple[str, str], Role] = {
    (path.split("/")[1], path.split("/")[-1]): role
    for path, _, role in APPENDS if role is not Role.CREATE
}


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise invalid([_entry(("header", "Idempotency-Key"), "use 1 to 255 printable characters",
                            "idempotency_key")])
    return key


def _if_match(request: Request) -> int | None:
    """The version an append is conditional on. RFC 9110: `*` matches any existing record (so
    no version is asked), and If-Match compares strongly, so a weak tag never matches: 412."""
    value = request.headers.get("if-match")
    if value is None or value.strip() == "*":
        return None
    text = value.strip()
    if text.startswith("W/") and _VERSION.fullmatch(text[2:].strip('"')):
        raise Problem(412, "Precondition failed", "If-Match compares strong entity tags: "
                      f"the weak tag {text} never matches (RFC 9110, section 13.1.1)")
    text = text.strip('"')
    if not _VERSION.fullmatch(text):  # str.isdigit takes "²", which int() does not
        raise invalid([_entry(("header", "If-Match"), "If-Match takes a record version number",
                            "if_match")])
    return int(text)


_VERSION = re.compile(r"[0-9]{1,15}")


async def run_appends(request: Request, committer: Committer, appends: list[Append],
                      raw: bytes, *, batch: bool) -> JSONResponse:
    key = _idempotency_key(request)
    fingerprint = request_fingerprint(request.method, request.url.path, raw)
    sender = recorded_by(request)
    if batch:  # its own transaction, in bulk: in a worker thread, off the event loop
        answer = await run_in_threadpool(committer.submit, appends, recorded_by=sender,
                                         batch=True, idempotency_key=key,
                                         fingerprint=fingerprint)
    else:
        answer = await committer.submit_async(appends, recorded_by=sender, idempotency_key=key,
                                              fingerprint=fingerprint)
    for kind in answer.appended:
        request.app.state.metrics.appended.labels(kind).inc()
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else {}
    if not batch:
        headers["ETag"] = f'"{answer.body["version"]}"'
        if answer.status == 201:  # a create: where the new record is read
            headers["Location"] = f"/v1/{KINDS[appends[0].kind].collection}/{answer.body['id']}"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)


Handler = Callable[..., Coroutine[Any, Any, JSONResponse]]


def _create_handler(spec: KindSpec) -> Handler:
    async def create(request: Request, _: Writer, committer: Committer) -> JSONResponse:
        raw = await read_body(request)
        return await run_appends(request, committer, [parse_append(spec, Role.CREATE, raw)],
                                 raw, batch=False)

    return create


def _action_handler(spec: KindSpec, role: Role) -> Handler:
    async def act(request: Request, record_id: str, _: Writer, committer: Committer
                  ) -> JSONResponse:
        if not is_record_id(record_id):
            raise Problem(404, "Not found", f"no {spec.kind.replace('_', ' ')} with id "
                                            f"{record_id!r}")
        raw = await read_body(request)
        append = parse_append(spec, role, raw, record_id=record_id,
                              expected_version=_if_match(request))
        return await run_appends(request, committer, [append], raw, batch=False)

    return act


def _register(path: str, spec: KindSpec, role: Role) -> None:
    label = spec.kind.replace("_", " ")
    if role is Role.CREATE:
        router.add_api_route(path, _create_handler(spec), methods=["POST"], status_code=201,
                             name=f"create_{spec.kind}", summary=f"Record a new {label}",
                             openapi_extra=request_body(spec.bodies[role]))
        return
    segment = path.rsplit("/", 1)[-1]
    router.add_api_route(path, _action_handler(spec, role), methods=["POST"],
                         name=f"record_{spec.kind}_{segment.replace('-', '_')}",
                         summary=f"Record {spec.events[role]}",
                         openapi_extra=request_body(spec.bodies[role]))


for _path, _kind, _role in APPENDS:
    _register(_path, KINDS[_kind], _role)
