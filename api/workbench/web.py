"""What every workbench page shares: templates, security headers, the signed-in session and
the CSRF check of forms."""

import hmac
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from api.problems import Problem, invalid, pydantic_errors
from infra.keys import Permission, Principal
from infra.reviews import may_review
from infra.seal import format_time
from infra.ui_sessions import UiSession, UiSessions

HERE = Path(__file__).parent
SESSION_COOKIE = "chipledger_ui"
LOGIN_CSRF_COOKIE = "chipledger_ui_login"
MAX_FORM_BYTES = 256 * 1024
# Nothing but this server: no inline script or style, no CDN, no frames.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

templates = Environment(loader=FileSystemLoader(HERE / "templates"),
                        autoescape=select_autoescape(default=True, default_for_string=True),
                        trim_blocks=True, lstrip_blocks=True)


def url(path: str, **query: Any) -> str:
    """A workbench link: `path` with the query parameters that are set."""
    given = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{path}?{urlencode(given)}" if given else path


templates.globals["url"] = url
templates.filters["rfc"] = format_time


@dataclass(frozen=True)
class When:
    """A page's (as_of, known_at) as the API reads them; a form's empty field is unset."""

    as_of: date | None
    known_at: datetime | None


DAY, MOMENT = TypeAdapter(date), TypeAdapter(datetime)


def optional(adapter: TypeAdapter[Any], text: str, name: str) -> Any:
    if not text.strip():
        return None
    try:
        return adapter.validate_python(text.strip())
    except ValidationError as error:
        raise invalid(pydantic_errors(error, ("query", name))) from None


def when(as_of: Annotated[str, Query(max_length=40)] = "",
         known_at: Annotated[str, Query(max_length=60)] = "") -> When:
    return When(optional(DAY, as_of, "as_of"), optional(MOMENT, known_at, "known_at"))


Times = Annotated[When, Depends(when)]


class SignInRequiredError(Exception):
    """No live session: the page answers with a redirect to the sign-in form."""


def secured(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


def page(name: str, session: UiSession | None, status: int = 200, **context: Any
         ) -> HTMLResponse:
    principal = session.principal if session else None
    html = templates.get_template(name).render(
        me=principal, csrf=session.csrf_token if session else "",
        can_audit=bool(principal and principal.may(Permission.AUDIT)),
        can_admin=bool(principal and principal.may(Permission.ADMIN)),
        can_review=bool(principal and may_review(principal)), **context)
    return secured(HTMLResponse(html, status_code=status))  # type: ignore[return-value]


def see_other(location: str) -> Response:
    return secured(RedirectResponse(location, status_code=303))


def sessions(request: Request) -> UiSessions:
    store: UiSessions = request.app.state.ui_sessions
    return store


async def current_session(request: Request) -> UiSession:
    token = request.cookies.get(SESSION_COOKIE, "")
    found = await run_in_threadpool(sessions(request).find, token) if token else None
    if found is None:
        raise SignInRequiredError()
    request.state.principal = found.principal  # for the request's canonical log line
    return found


SignedIn = Annotated[UiSession, Depends(current_session)]


def needs(session: UiSession, permission: Permission) -> Principal:
    if not session.principal.may(permission):
        raise Problem(403, "Forbidden",
                      f"role {session.principal.role.value!r} may not {permission.value}")
    return session.principal


async def form_of(request: Request) -> dict[str, str]:
    """A url-encoded form's fields (the first value of each)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise Problem(413, "Payload too large", f"forms are limited to {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise Problem(400, "Bad request", "the form is not UTF-8") from None
    return {name: values[0] for name, values in fields.items()}


def check_csrf(given: str | None, expected: str) -> None:
    if not given or not expected or not hmac.compare_digest(given, expected):
        raise Problem(403, "Forbidden", "the form's CSRF token is missing or wrong: reload "
                                        "the page and send it again")


async def checked_form(request: Request, session: UiSession) -> dict[str, str]:
    form = await form_of(request)
    check_csrf(form.get("csrf"), session.csrf_token)
    return form


def cookie_flags(request: Request) -> dict[str, Any]:
    return {"httponly": True, "samesite": "strict", "secure": request.url.scheme == "https",
            "path": "/ui"}
