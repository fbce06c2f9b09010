"""`chipledger export` and `chipledger import`: the log out as a verifiable bundle, and
NDJSON in, all or nothing."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from api.appends import batch_lines, parse_batch_line
from api.bodies import request_fingerprint
from api.cli.app import _progress, _start, _start_signing, cli, err
from api.problems import Problem
from api.routes.integrity import export_lines
from domain.errors import LedgerError
from infra.checkpoints import Checkpointer, CheckpointRefusedError
from infra.gc_pause import gc_paused
from infra.keys import command_line_user
from infra.merkle.certify import Certifier
from infra.merkle.publish import TreeRefusedError
from infra.service import AppendService


@cli.command()
def export(
    file: Annotated[Path | None, typer.Argument(help="output file; default stdout")] = None,
) -> None:
    """Write the whole log with its hashes as NDJSON, verifiable offline. Exits 1, writing
    nothing, when the log does not extend its latest checkpoint."""
    container, key = _start_signing()
    try:
        try:
            checkpoint = Checkpointer(container, key).checkpoint_now()
            note = Certifier.of(container, key).export_note(checkpoint.position
                                                              if checkpoint else 0)
        except (CheckpointRefusedError, TreeRefusedError) as refused:
            err.print(f"refused: {refused.reason}; nothing signed or exported, and an "
                      "integrity alarm is raised", soft_wrap=True)
            raise typer.Exit(1) from None
        out = file.open("w", encoding="utf-8") if file else sys.stdout
        try:
            for line in export_lines(container.store, checkpoint, note):
                out.write(line)
        finally:
            if file:
                out.close()
    finally:
        container.close()


@cli.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="NDJSON, one batch line per record event")],
) -> None:
    """Append every line of FILE in one transaction: all or nothing."""
    raw = file.read_bytes()
    lines = batch_lines(raw)
    container = _start()
    try:
        appends, problems = [], []
        with _progress() as progress:
            task = progress.add_task("validating", total=len(lines))
            with gc_paused():  # see infra.gc_pause
                for done, (number, line) in enumerate(lines, 1):
                    try:
                        appends.append(parse_batch_line(line, number))
                    except Problem as problem:
                        problems += problem.errors
                    if done % 1000 == 0 or done == len(lines):
                        # advancing the bar line by line cost 1.5 us a line, a tenth of the parse
                        progress.update(task, completed=done)
        if problems:
            for entry in problems[:20]:
                # markup off: a field may be a key from the file, "[/x]" say
                err.print(f"line {entry['loc'][1]}: {entry['field']}: {entry['msg']}",
                          markup=False)
            err.print(f"{len(problems)} problem(s); nothing imported")
            raise typer.Exit(1)
        with err.status(f"appending {len(appends)} events in one transaction"):
            answer = AppendService(container).append(
                appends, recorded_by=command_line_user(), batch=True,
                fingerprint=request_fingerprint("IMPORT", str(file), raw),
            )
    except LedgerError as error:
        err.print(f"refused: {error}; nothing imported", markup=False)
        raise typer.Exit(1) from None
    finally:
        container.close()
    positions = answer.body["positions"]
    span = f"positions {positions[0]}-{positions[-1]}" if positions else "no new events"
    print(f"imported {answer.body['count']} lines: {answer.body['appended']} events ({span})")
