"""What routes are handed, as `Annotated` aliases: the caller's role (bearer API keys, one
dependency per route), the services, and the moment a read asks about (resolved once, after
any read-your-writes wait)."""

import asyncio
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from api.problems import Problem, invalid
from domain.ids import is_record_id
from infra.bootstrap import Container
from infra.checkpoints import Checkpointer, CheckpointStore, SigningKey
from infra.group_commit import GroupCommitter
from infra.keys import KeyRing, Permission, Principal, Role
from infra.merkle.certify import Certifier
from infra.merkle.proving import Prover
from infra.merkle.publish import TreePublisher
from infra.replay import ReplayService
from infra.seal import RecordedBy
from infra.settings import AuthMode
from infra.store import LogStore
from infra.webhooks import Webhooks
from projections.lists import ListService
from projections.posture import MAX_WAIT_SECONDS, PostureService, ProjectionBehindError
from projections.records import ReadService
from projections.views import Moment

# The caller's role ----------------------------------------------------------------------

# With CHIPLEDGER_AUTH=disabled every request acts as this admin, and the events it appends
# say so: recorded_by {"key_id": "auth-disabled", "name": "auth disabled", "role": "admin"}.
ANONYMOUS_ADMIN = Principal("auth-disabled", "auth disabled", Role.ADMIN)


def recorded_by(request: Request) -> RecordedBy:
    """Who sent a request that passed its route's guard: what its events are sealed with."""
    principal: Principal = request.state.principal
    return principal.recorded_by


def require(permission: Permission) -> Callable[[Request], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only keys whose role grants `permission`.

    Async, so a request whose key was verified moments ago is admitted on the event loop; only
    a key not seen lately is looked up, in a worker thread (a sync dependency took a worker
    thread for every request)."""

    async def check(request: Request) -> Principal:
        state = request.app.state
        if state.settings.auth is AuthMode.DISABLED:
            request.state.principal = ANONYMOUS_ADMIN
            return ANONYMOUS_ADMIN
        principal = await _authenticate(state.keyring, request.headers.get("authorization", ""))
        request.state.principal = principal  # for the request's canonical log line
        if not principal.may(permission):
            raise Problem(403, "Forbidden",
                          f"role {principal.role.value!r} may not {permission.value}")
        return principal

    check.required_permission = permission  # type: ignore[attr-defined]
    return check


async def _authenticate(keyring: KeyRing, header: str) -> Principal:
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Problem(401, "Unauthorized", "send Authorization: Bearer <api key>",
                      headers={"WWW-Authenticate": "Bearer"})
    principal = keyring.recently_verified(key) or await run_in_threadpool(
        keyring.authenticate, key)
    if principal is None:
        raise Problem(401, "Unauthorized", "unknown or revoked API key",
                      headers={"WWW-Authenticate": "Bearer"})
    return principal


Reader = Annotated[Principal, Depends(require(Permission.READ))]
Writer = Annotated[Principal, Depends(require(Permission.WRITE))]
Auditor = Annotated[Principal, Depends(require(Permission.AUDIT))]
Admin = Annotated[Principal, Depends(require(Permission.ADMIN))]
Witness = Annotated[Principal, Depends(require(Permission.COSIGN))]  # a witness, or admin


# The moment a read asks about --------------------------------------------------------------

AsOf = Annotated[date | None, Query(description="valid date (YYYY-MM-DD); default today")]
KnownAt = Annotated[datetime | None, Query(description="record time (RFC 3339); default now")]
MinPosition = Annotated[int | None, Query(ge=0, description=(
    "wait (up to 5 s, then 503 with Retry-After) until the read models have reached this "
    "position; a position beyond the log's head is a 422"))]

# How often a read-your-writes wait looks at the read models' position: soon, then less often.
_FIRST_LOOK, _LATEST_LOOK = 0.01, 0.2


def _state(name: str) -> Any:
    # async: FastAPI runs a sync dependency in a worker thread, a hop per request for nothing
    async def service(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(service)


Services = Annotated[Container, _state("container")]
Postures = Annotated[PostureService, _state("posture")]
Records = Annotated[ReadService, _state("reads")]
Lists = Annotated[ListService, _state("reads")]
Replays = Annotated[ReplayService, _state("replays")]
Committer = Annotated[GroupCommitter, _state("committer")]
Signer = Annotated[Checkpointer, _state("checkpointer")]
Key = Annotated[SigningKey, _state("signing_key")]
Hooks = Annotated[Webhooks, _state("webhooks")]
Publisher = Annotated[TreePublisher, _state("publisher")]  # the Merkle tree's checkpoints
Prove = Annotated[Prover, _state("prover")]
Certify = Annotated[Certifier, _state("certifier")]


async def log(request: Request) -> LogStore:
    store: LogStore = request.app.state.container.store
    return store


async def checkpoints(request: Request) -> CheckpointStore:
    return CheckpointStore(request.app.state.container.store)


Log = Annotated[LogStore, Depends(log)]
Checkpoints = Annotated[CheckpointStore, Depends(checkpoints)]


def moment_of(as_of: date | None, known_at: datetime | None, *, name: str = "known_at"
              ) -> Moment:
    """The moment a read asks about: today and now by default, `known_at` in UTC."""
    now = datetime.now(UTC)
    return Moment(as_of or now.date(), utc(known_at, name) if known_at else now)


def utc(moment: datetime, name: str) -> datetime:
    """A record time in UTC (RFC 3339 wants an offset: none is read as UTC); a 422 naming
    `name` when it is out of range there."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise invalid([{"loc": ["query", name], "field": f"query.{name}",
                        "msg": "the timestamp is out of range in UTC",
                        "type": "datetime_range"}]) from None


def resolve_times(as_of: date | None, known_at: datetime | None, *, name: str = "known_at"
                  ) -> tuple[date, datetime]:
    """`moment_of` as a pair, for the CLI and bench."""
    moment = moment_of(as_of, known_at, name=name)
    return moment.as_of, moment.known_at


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
    deadline, delay = time.monotonic() + timeout, _FIRST_LOOK
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


async def waited(service: PostureService, min_position: int | None) -> None:
    if min_position is not None:
        await reach(service, min_position)


async def firm_moment(service: Postures, as_of: AsOf = None, known_at: KnownAt = None,
                      min_position: MinPosition = None) -> Moment:
    """?as_of=&known_at=&min_position= of a posture read: waited for, then resolved once."""
    await waited(service, min_position)
    return moment_of(as_of, known_at)


async def known_moment(service: Postures, known_at: KnownAt = None,
                       min_position: MinPosition = None) -> Moment:
    """A read across every valid date (a timeline): only `known_at` is asked."""
    await waited(service, min_position)
    return moment_of(None, known_at)


async def restatements_moment(service: Postures,
                              known_to: Annotated[datetime | None, Query()] = None,
                              min_position: MinPosition = None) -> Moment:
    """The end of a restatements read: `known_to` (named known_at in its problems)."""
    await waited(service, min_position)
    return moment_of(None, known_to)


async def span(from_: Annotated[date | None, Query(alias="from")] = None,
         to: Annotated[date | None, Query()] = None) -> tuple[date | None, date | None]:
    """A timeline's valid dates, [from, to): refused before any wait when out of order."""
    if from_ and to and to <= from_:
        raise Problem(422, "Invalid request", "to must be after from", slug="validation",
                      errors=[{"loc": ["query", "to"], "field": "query.to",
                               "msg": "to must be after from", "type": "date_order"}])
    return from_, to


FirmMoment = Annotated[Moment, Depends(firm_moment)]
KnownMoment = Annotated[Moment, Depends(known_moment)]
RestatementsMoment = Annotated[Moment, Depends(restatements_moment)]
Span = Annotated[tuple[date | None, date | None], Depends(span)]


def check_firm_id(firm_id: str) -> str:
    """The path's firm id; a 404 for one no record can have."""
    if not is_record_id(firm_id):
        raise Problem(404, "Not found", f"no firm with id {firm_id!r}")
    return firm_id
