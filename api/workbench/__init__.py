"""The compliance workbench under /ui/: server-rendered pages on the API's own use cases."""

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.problems import Problem
from api.workbench import audit, firm, records, signin, worklist
from api.workbench.web import HERE, SignInRequiredError, page, see_other
from domain.errors import RecordNotFoundError
from infra.bootstrap import Container
from infra.reviews import ReviewService
from infra.settings import AuthMode
from infra.ui_sessions import UiSessions


def install(app: FastAPI) -> None:
    """Install after api.problems: the workbench's problem handlers answer /ui/ pages in HTML
    and hand every other path the API's own problem+json."""
    for module in (signin, worklist, firm, records, audit):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui_static")

    @app.exception_handler(SignInRequiredError)
    async def _sign_in(_: Request, __: SignInRequiredError) -> Response:
        return see_other("/ui/login")

    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem) -> Response:
        """On a workbench page, a problem is a page too; elsewhere the API's problem+json."""
        if not request.url.path.startswith("/ui/"):
            return problem.response()
        shown = page("error.html", None, problem.status, title=problem.title,
                     detail=problem.detail, errors=problem.errors, code=problem.status)
        shown.headers.update(problem.headers)
        return shown

    @app.exception_handler(RecordNotFoundError)
    async def _not_found(request: Request, error: RecordNotFoundError) -> Response:
        return await _problem(request, Problem(404, "Not found", str(error)))


def wire(app: FastAPI, container: Container) -> None:
    """The workbench's services, built with the app's others at startup."""
    settings = container.settings
    app.state.reviews = ReviewService(container, app.state.posture)
    app.state.ui_sessions = UiSessions(container.store, settings.ui_session_idle_minutes * 60,
                                       auth_disabled=settings.auth is AuthMode.DISABLED)
