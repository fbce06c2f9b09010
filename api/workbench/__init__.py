"""The compliance workbench under /ui/: server-rendered pages on the API's own use cases,
and the review capability (POST /v1/reviews, GET /v1/firms/{id}/reviews)."""

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles

from api.workbench import audit, firm, records, reviews_api, signin, worklist
from api.workbench.web import HERE, SignInRequiredError, see_other
from infra.bootstrap import Container
from infra.reviews import ReviewService
from infra.settings import AuthMode
from infra.ui_sessions import UiSessions


def install(app: FastAPI) -> None:
    reviews_api.install(app)
    for module in (signin, worklist, firm, records, audit):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui_static")

    @app.exception_handler(SignInRequiredError)
    async def _sign_in(_: Request, __: SignInRequiredError) -> Response:
        return see_other("/ui/login")


def wire(app: FastAPI, container: Container) -> None:
    """The workbench's services, built with the app's others at startup."""
    settings = container.settings
    app.state.reviews = ReviewService(container, app.state.posture)
    app.state.ui_sessions = UiSessions(container.store, settings.ui_session_idle_minutes * 60,
                                       auth_disabled=settings.auth is AuthMode.DISABLED)
