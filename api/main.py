"""The FastAPI application: built by `create_app`, nothing done at import. The one place in
api/ (with deps.py and the CLI) that builds infra's services."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from api import docs, errors, openapi, workbench
from api.middleware import Observe
from api.routes import (
    appends,
    events,
    firms,
    integrity,
    lists,
    ops,
    proofs,
    records,
    replays,
    reviews,
    webhooks,
)
from api.version import chipledger_version
from infra.bootstrap import Container, bootstrap
from infra.checkpoints import Checkpointer, signing_key_for
from infra.group_commit import GroupCommitter
from infra.keys import KeyRing
from infra.merkle.certify import Certifier
from infra.merkle.proving import Prover
from infra.merkle.publish import TreePublisher
from infra.metrics import Metrics
from infra.posture import posture_service
from infra.replay import ReplayService
from infra.service import AppendService, ReadService
from infra.settings import AuthMode, DocsMode, Settings
from infra.webhooks import Webhooks
from infra.workers import Workers

log = structlog.get_logger("chipledger.api")
# In the order they are matched (no two of their paths overlap).
ROUTERS = (appends.router, events.router, replays.router, firms.router, lists.router,
           records.router, reviews.router, integrity.router, proofs.router, ops.router)


def create_app(settings: Settings | None = None, container: Container | None = None, *,
               workers: bool = True) -> FastAPI:
    """Build the app. With no container, one is bootstrapped at startup and closed at
    shutdown; a given container belongs to the caller. With `workers`, the projection
    runner follows the log in a background thread of this process."""
    settings = container.settings if container else (settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = container or bootstrap(settings)
        wire(app, built)
        background = _start(app, built, workers)
        try:
            yield
        finally:
            app.state.committer.stop()
            if background:
                background.stop()
            if container is None:  # ours: bootstrapped here
                built.close()

    app = FastAPI(
        title="chipledger",
        version=chipledger_version(),
        summary="Event-sourced, bitemporal audit ledger for AI-compute export control",
        lifespan=lifespan,
        docs_url=None, redoc_url=None,  # api/docs.py serves them, offline
        openapi_url="/openapi.json" if settings.docs is DocsMode.PUBLIC else None,
    )
    app.state.settings = settings
    app.state.metrics = Metrics()
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    webhooks.install(app)
    workbench.install(app)
    openapi.install(app)
    if settings.docs is DocsMode.PUBLIC:
        docs.install(app)
    app.add_middleware(Observe)
    return app


def _start(app: FastAPI, container: Container, workers: bool) -> Workers | None:
    """Start the group committer and, with `workers`, the background workers."""
    settings = container.settings
    app.state.committer.start()
    if settings.auth is AuthMode.DISABLED:
        log.warning("auth_disabled", detail="CHIPLEDGER_AUTH=disabled: every request is "
                    "served as admin, without a key. Never run this way in production.")
    background = Workers(container, poll_interval=settings.poll_interval,
                         checkpointer=app.state.checkpointer, dispatch=True) if workers else None
    if background:
        background.start()
    log.info("api_started", backend=settings.backend, workers=workers)
    return background


def wire(app: FastAPI, container: Container) -> None:
    app.state.container = container
    app.state.appends = AppendService(container)
    app.state.committer = GroupCommitter(app.state.appends,
                                         database_timeout=container.settings.database_timeout)
    app.state.reads = ReadService(container)  # records as of, and the chain's check
    app.state.keyring = KeyRing(container.store)
    app.state.posture = posture_service(container)
    app.state.replays = ReplayService(container)
    app.state.signing_key = signing_key_for(container)
    app.state.checkpointer = Checkpointer(container, app.state.signing_key)
    app.state.webhooks = Webhooks(container)
    app.state.publisher = TreePublisher(container, app.state.signing_key)
    app.state.prover = Prover(app.state.publisher.tree)  # one tile cache
    app.state.certifier = Certifier(container, app.state.publisher, app.state.prover)
    workbench.wire(app, container)
