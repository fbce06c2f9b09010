"""`chipledger rebuild`, `posture` and `replay`: the read models rebuilt, read and checked
against the raw log."""

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.appends import batch_lines, parse_batch_line
from api.cli.app import EXIT_FAILED_SUBJECTS, _progress, _start, _startup, _times, cli, err, out
from api.problems import Problem
from domain.errors import LedgerError
from domain.evaluator import Posture
from infra.findings_store import PROJECTION_ALARMS
from infra.posture import posture_service
from infra.replay import Replay, ReplayService
from infra.runner import LeaderStalledError, ProjectionLedError, ProjectionRunner
from infra.seal import format_time
from projections.findings import PROJECTION_NAME, subject_of_key
from projections.views import Moment, Reading


@cli.command()
def rebuild(
    projection: Annotated[str, typer.Argument(help="the read model to rebuild")] = "findings",
) -> None:
    """Rebuild a read model from position 0 of the log."""
    if projection != PROJECTION_NAME:
        err.print(f"unknown projection {projection!r}; known: {PROJECTION_NAME}")
        raise typer.Exit(2)
    container = _start()
    try:
        head = container.store.head()
        with _progress() as progress:
            task = progress.add_task(f"rebuilding {projection}",
                                     total=head.position if head else 0)
            with _startup(ProjectionLedError):
                position = ProjectionRunner(container).rebuild_as_leader(
                    lambda done, _: progress.update(task, completed=done))
        failed = [a for a in container.alarms.active(PROJECTION_ALARMS)
                  if subject_of_key(a.key) is not None]
    finally:
        container.close()
    print(f"rebuilt {projection} through position {position}")
    if failed:
        err.print(f"{len(failed)} subject(s) could not be evaluated and keep no findings "
                  "(alarms raised: /readyz says degraded):")
        for alarm in failed:
            err.print(f"  {alarm.key} at position {alarm.position}: {alarm.reason}",
                      markup=False, highlight=False)
        raise typer.Exit(EXIT_FAILED_SUBJECTS)


@cli.command()
def posture(
    firm: Annotated[str, typer.Argument(help="the firm's id")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="valid date YYYY-MM-DD")] = None,
    known_at: Annotated[str | None, typer.Option("--known-at", help="RFC 3339 time")] = None,
) -> None:
    """A firm's posture on a date as known at a time, as a table."""
    day, moment_at = _times(as_of, known_at)
    container = _start()
    try:
        with _startup(LeaderStalledError):
            ProjectionRunner(container).project_to_head()
        moment, result = posture_service(container).firm_posture(firm, Moment(day, moment_at))
    except LedgerError as error:
        err.print(str(error))
        raise typer.Exit(1) from None
    finally:
        container.close()
    out.print(posture_table(result, moment))


@cli.command()
def replay(
    as_of: Annotated[str | None, typer.Option("--as-of", help="valid date YYYY-MM-DD")] = None,
    known_at: Annotated[str | None, typer.Option("--known-at", help="RFC 3339 time")] = None,
    firm: Annotated[list[str] | None, typer.Option("--firm", help="a firm (repeatable)")] = None,
    hypothetical: Annotated[Path | None, typer.Option(
        "--hypothetical", exists=True, dir_okay=False,
        help="NDJSON of proposed records (batch lines), evaluated but never stored")] = None,
) -> None:
    """Recompute posture from the raw log alone and compare with the read models."""
    day, moment_at = _times(as_of, known_at)
    appends = []
    if hypothetical is not None:
        try:
            appends = [parse_batch_line(line, n)
                       for n, line in batch_lines(hypothetical.read_bytes())]
        except Problem as problem:
            for entry in problem.errors:
                err.print(f"{entry['field']}: {entry['msg']}", markup=False)
            raise typer.Exit(1) from None
    container = _start()
    try:
        with _startup(LeaderStalledError):
            ProjectionRunner(container).project_to_head()
        result = ReplayService(container).replay(day, moment_at, firm or None, appends)
    except LedgerError as error:
        err.print(f"refused: {error}", markup=False)
        raise typer.Exit(1) from None
    finally:
        container.close()
    out.print(replay_table(result))
    for failure in result.failed_subjects:
        err.print(f"not evaluated: {failure.key} (firm {failure.firm_id}): {failure.reason}",
                  markup=False, highlight=False)
    if result.consistent_with_projections is False:
        for d in result.differences:
            out.print(f"[red]difference[/] {d.firm_id} {d.key}: replayed "
                      f"{d.replayed.status.value if d.replayed else 'none'}, projected "
                      f"{d.projected.status.value if d.projected else 'none'}")
        raise typer.Exit(1)
    if result.failed_subjects:
        raise typer.Exit(EXIT_FAILED_SUBJECTS)


def replay_table(result: Replay) -> Table:
    consistent = {True: "consistent with the read models", False: "DIFFERS from the read models",
                  None: "hypothetical: not compared"}[result.consistent_with_projections]
    table = Table(title=f"replay of {result.events_replayed} events to position "
                        f"{result.position}, as of {result.as_of}: {consistent}")
    for column in ("firm", "status", "residency", "before (without hypothetical)"):
        table.add_column(column)
    for firm_id, answer in result.firms.items():
        before = result.baseline[firm_id].posture.status.value if result.baseline else ""
        table.add_row(firm_id, answer.posture.status.value, answer.residency_status.value,
                      before)
    return table


def posture_table(result: Posture, moment: Reading) -> Table:
    table = Table(title=f"{result.firm_id}: {result.status.value.upper()} on {moment.as_of} "
                        f"(as known at {format_time(moment.known_at)}, position "
                        f"{moment.position})")
    for column in ("status", "subject", "regulation", "from", "to", "explanation"):
        table.add_column(column, overflow="fold")
    for f in result.findings:
        table.add_row(f.status.value, f"{f.subject_type} {f.subject_id}", f.regulation_id,
                      str(f.valid_from), str(f.valid_to or "open"), f.explanation)
    return table
