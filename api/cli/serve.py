"""`chipledger serve` (the HTTP API, in one or several processes) and `chipledger worker`."""

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer

from api.cli.app import _settings, _start_signing, _start_signing_with, cli, err
from infra.checkpoints import Checkpointer
from infra.logging import configure_logging
from infra.settings import Settings
from infra.workers import Workers

if TYPE_CHECKING:
    from fastapi import FastAPI


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    no_workers: Annotated[bool, typer.Option(
        "--no-workers", help="serve the API only; run `chipledger worker` elsewhere")] = False,
    processes: Annotated[int, typer.Option(
        min=1, help="API processes on the one port, each with its own group committer "
        "(PostgreSQL only)")] = 1,
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from api.app import create_app

    settings = _settings()
    if processes == 1:
        # Opened here, not in the app's lifespan: a database or key that fails is one line
        # and exit 2, where uvicorn would print a traceback and exit 3.
        container, _ = _start_signing_with(settings)
        try:
            app = create_app(container=container, workers=not no_workers)
            uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
        finally:
            container.close()
        return
    if settings.backend != "postgres":
        err.print("--processes above 1 needs PostgreSQL: SQLite has a single writer, which "
                  "API processes would only queue for (and contend on its file lock)")
        raise typer.Exit(2)
    _serve_processes(settings, host, port, processes, workers=not no_workers)


def _serve_processes(settings: Settings, host: str, port: int, processes: int, *,
                     workers: bool) -> None:
    """Several API processes, each committing its own groups (positions are sealed under the
    recorder's table lock, so concurrent writers stay in one chain). This process prepares
    what they would race to create (tables, the signing key), runs the workers once rather
    than in every API process, and supervises the API processes."""
    import uvicorn

    container, key = _start_signing_with(settings)
    background = Workers(container, poll_interval=settings.poll_interval,
                         checkpointer=Checkpointer(container, key),
                         dispatch=True) if workers else None
    if background:
        background.start()
    try:
        uvicorn.run("api.cli.serve:api_process_app", factory=True, host=host, port=port,
                    workers=processes, log_config=None, access_log=False)
    finally:
        if background:
            background.stop()
        container.close()


def api_process_app() -> "FastAPI":
    """The app of one API process of `serve --processes N`, built in that process."""
    from api.app import create_app

    settings = Settings()
    configure_logging(settings.log_format, settings.log_level)
    return create_app(settings, workers=False)


@cli.command()
def worker() -> None:
    """Run projections, checkpoints and webhook dispatch (no API), until interrupted."""
    container, key = _start_signing()
    workers = Workers(container, poll_interval=container.settings.poll_interval,
                      checkpointer=Checkpointer(container, key), dispatch=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    err.print(f"worker following the log on {container.settings.backend}: projections, "
              "checkpoints, webhook dispatch")
    workers.start()
    try:
        stop.wait()
    finally:
        workers.stop()
        container.close()
