"""Signing in with an API key and out again."""

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from api.auth import ANONYMOUS_ADMIN
from api.workbench.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SignedIn,
    check_csrf,
    checked_form,
    cookie_flags,
    form_of,
    page,
    see_other,
    sessions,
)
from infra.keys import KeyRing, digest
from infra.settings import AuthMode
from infra.ui_sessions import NO_KEY

router = APIRouter(prefix="/ui", include_in_schema=False)


def _login_form(request: Request, error: str = "", status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = page("login.html", None, status, login_csrf=token, error=error,
                    auth_disabled=request.app.state.settings.auth is AuthMode.DISABLED)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **cookie_flags(request))
    return response


@router.get("/login")
async def login_form(request: Request) -> Response:
    """The sign-in form: one field, the API key."""
    return _login_form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the key and open a session: 303 to the worklist with the session cookie."""
    form = await form_of(request)
    check_csrf(form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE, ""))
    key = form.get("api_key", "").strip()
    if request.app.state.settings.auth is AuthMode.DISABLED:
        principal, key_hash = ANONYMOUS_ADMIN, NO_KEY
    else:
        keyring: KeyRing = request.app.state.keyring
        found = await run_in_threadpool(keyring.authenticate, key)
        if found is None:
            return _login_form(request, "unknown or revoked API key", 401)
        principal, key_hash = found, digest(key)
    token = await run_in_threadpool(sessions(request).open, key_hash, principal)
    response = see_other("/ui/")
    response.set_cookie(SESSION_COOKIE, token, **cookie_flags(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.post("/logout")
async def logout(request: Request, session: SignedIn) -> Response:
    """Close the session and forget its cookie."""
    await checked_form(request, session)
    await run_in_threadpool(sessions(request).close, request.cookies.get(SESSION_COOKIE, ""))
    response = see_other("/ui/login")
    response.delete_cookie(SESSION_COOKIE, path="/ui", httponly=True, samesite="strict")
    return response
