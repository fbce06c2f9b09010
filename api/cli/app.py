"""The `chipledger` command: its Typer app, the global options, and how a command starts
(settings, database, signing key), failing in one line with exit 2."""

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.deps import resolve_times
from api.version import chipledger_version
from infra.bootstrap import Container
from infra.checkpoints import SigningKey
from infra.logging import configure_logging
from infra.settings import Settings
from infra.startup import StartupError, load_settings, open_database, signing_key

if TYPE_CHECKING:
    pass

cli = typer.Typer(name="chipledger", no_args_is_help=True, add_completion=False,
                  help="Event-sourced audit ledger for AI-compute export control.")
keys = typer.Typer(no_args_is_help=True, help="API keys.")
cli.add_typer(keys, name="keys")
err = Console(stderr=True)
out = Console()
# The work completed for every subject but these, whose evaluation raised (listed on stderr):
# not a crash (1) nor a usage error (2), so a script can tell it apart.
EXIT_FAILED_SUBJECTS = 3


@dataclass
class _Options:
    debug: bool = False


_options = _Options()


def _print_version(asked: bool) -> None:
    if asked:
        print(f"chipledger {chipledger_version()}")
        raise typer.Exit(0)


@cli.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="show the traceback of a failure to start")] = False,
    _version: Annotated[bool, typer.Option(
        "--version", help="print the version and exit", is_eager=True,
        callback=_print_version)] = False,
) -> None:
    _options.debug = debug


@contextmanager
def _startup(*also: type[Exception]) -> Iterator[None]:
    """A failure to start (or to get the projection's lead: `also`) is one line on stderr
    saying what to fix, and exit code 2."""
    caught: tuple[type[Exception], ...] = (StartupError, *also)
    try:
        yield
    except caught as error:
        if _options.debug:
            traceback.print_exception(error)
        print(f"chipledger: {error}", file=sys.stderr)
        raise typer.Exit(2) from None


def _settings() -> Settings:
    with _startup():
        settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


def _open(settings: Settings) -> Container:
    with _startup():
        return open_database(settings)


def _start() -> Container:
    return _open(_settings())


def _start_signing() -> tuple[Container, SigningKey]:
    return _start_signing_with(_settings())


def _start_signing_with(settings: Settings) -> tuple[Container, SigningKey]:
    """The container and the key its checkpoints are signed with."""
    container = _open(settings)
    try:
        with _startup():
            return container, signing_key(container)
    except BaseException:
        container.close()
        raise


def _times(as_of: str | None, known_at: str | None) -> tuple[date, datetime]:
    try:
        day = date.fromisoformat(as_of) if as_of else None
        moment = datetime.fromisoformat(known_at) if known_at else None
    except ValueError as error:
        err.print(f"bad date or time: {error}")
        raise typer.Exit(2) from None
    return resolve_times(day, moment)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err)


def main() -> None:
    cli()
