"""Bearer API keys and roles, enforced by one dependency per route."""

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from api.problems import Problem
from infra.keys import KeyRing, Permission, Principal, Role
from infra.seal import RecordedBy
from infra.settings import AuthMode

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
Witness = Annotated[Principal, Depends(require(Permission.COSIGN))]
