"""The `chipledger` command line: the same contract as the HTTP API."""

import json
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from api import proof_commands
from api.appends import batch_lines, parse_batch_line
from api.audit import export_lines
from api.problems import Problem
from api.reads import resolve_times
from domain.errors import LedgerError
from domain.evaluator import Posture
from infra.bootstrap import Container
from infra.bundle import BundleError, verify_bundle
from infra.checkpoints import (
    Checkpoint,
    Checkpointer,
    CheckpointRefusedError,
    Extension,
    SigningKey,
    read_public_key,
    verify_extends,
)
from infra.findings_store import PROJECTION_ALARMS
from infra.gc_pause import gc_paused
from infra.keys import KEY_CACHE_SECONDS, KeyRing, Role, command_line_user
from infra.logging import configure_logging
from infra.merkle.certify import Certifier
from infra.merkle.publish import TreeRefusedError
from infra.posture import Moment, PostureService
from infra.replay import Replay, ReplayService
from infra.runner import LeaderStalledError, ProjectionLedError, ProjectionRunner, Workers
from infra.seal import format_time
from infra.service import AppendService, ReadService, request_fingerprint
from infra.settings import Settings
from infra.startup import StartupError, load_settings, open_database, signing_key
from projections.findings import PROJECTION_NAME, subject_of_key

if TYPE_CHECKING:
    from fastapi import FastAPI

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


@cli.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="show the traceback of a failure to start")] = False,
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
        uvicorn.run("api.cli:api_process_app", factory=True, host=host, port=port,
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
        service = PostureService(container)
        moment = service.moment(day, moment_at)
        service.check_firm(firm, moment)
        result = service.posture(firm, moment)
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


def _times(as_of: str | None, known_at: str | None) -> tuple[date, datetime]:
    try:
        day = date.fromisoformat(as_of) if as_of else None
        moment = datetime.fromisoformat(known_at) if known_at else None
    except ValueError as error:
        err.print(f"bad date or time: {error}")
        raise typer.Exit(2) from None
    return resolve_times(day, moment)


def posture_table(result: Posture, moment: Moment) -> Table:
    table = Table(title=f"{result.firm_id}: {result.status.value.upper()} on {moment.as_of} "
                        f"(as known at {format_time(moment.known_at)}, position "
                        f"{moment.position})")
    for column in ("status", "subject", "regulation", "from", "to", "explanation"):
        table.add_column(column, overflow="fold")
    for f in result.findings:
        table.add_row(f.status.value, f"{f.subject_type} {f.subject_id}", f.regulation_id,
                      str(f.valid_from), str(f.valid_to or "open"), f.explanation)
    return table


@cli.command()
def demo() -> None:
    """Record the 2022-2025 export-control story and print each firm's posture over time."""
    from api.demo import run_demo

    container = _start()
    try:
        with _startup(LeaderStalledError):
            run_demo(container, out)
    finally:
        container.close()


@keys.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="reader, writer, auditor, admin or witness")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
) -> None:
    """Create an API key. The key is printed once, alone on the last line."""
    container = _start()
    try:
        key_id, key = KeyRing(container.store).create(role, name)
    finally:
        container.close()
    err.print(f"created {role.value} key {key_id}; store it now, it is not shown again")
    print(key)


@keys.command("list")
def keys_list() -> None:
    """Every API key: id, role, created, revoked, name (never the key or its hash)."""
    container = _start()
    try:
        rows = KeyRing(container.store).all_keys()
    finally:
        container.close()
    print(f"{'KEY ID':<10} {'ROLE':<8} {'CREATED':<27} {'REVOKED':<27} NAME")
    for row in rows:
        revoked = format_time(row.revoked_at) if row.revoked_at else "-"
        print(f"{row.key_id:<10} {row.role:<8} {format_time(row.created_at):<27} "
              f"{revoked:<27} {row.name}")


@keys.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id, as `keys list` shows it")],
) -> None:
    """Revoke an API key: servers refuse it within their 5 s key cache."""
    container = _start()
    try:
        row = KeyRing(container.store).revoke(key_id)
    finally:
        container.close()
    if row is None:
        err.print(f"no API key has the id {key_id!r}; `chipledger keys list` shows them",
                  soft_wrap=True, markup=False)
        raise typer.Exit(1)
    assert row.revoked_at is not None
    print(f"revoked {row.role} key {row.key_id} ({row.name}) at {format_time(row.revoked_at)}; "
          f"servers refuse it within {KEY_CACHE_SECONDS:g} s")


@cli.command()
def verify(
    against: Annotated[Path | None, typer.Option(
        "--against", exists=True, dir_okay=False,
        help="an earlier checkpoint (JSON): prove the log extends it")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", exists=True, dir_okay=False,
        help="verify an export bundle offline, without any database")] = None,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="the service's public key, to trust for checkpoints: a file or "
        "the text itself, as PEM, base64 of the raw key, or the JSON of GET "
        "/v1/integrity/public-key")] = None,
    trust_embedded_key: Annotated[bool, typer.Option(
        "--trust-embedded-key", help="trust the key a checkpoint carries (without "
        "--public-key, a checkpoint is otherwise reported unverified)")] = False,
    certificate: Annotated[Path | None, typer.Option(
        "--certificate", exists=True, dir_okay=False,
        help="check a posture certificate offline, against --public-key")] = None,
) -> None:
    """Recompute the hash chain. Exits 1 and names the first bad position on a mismatch; exits
    1 too when a checkpoint's signature was checked by no trusted key."""
    if certificate is not None:
        proof_commands.verify_certificate_file(certificate, public_key)
        return
    trust = _trust(public_key, trust_embedded_key)
    earlier = _earlier_checkpoint(against)
    if file is not None:
        _verify_bundle(file, trust, earlier)
        return
    container = _start()
    try:
        if earlier is not None:
            extension = verify_extends(container.store.iter_entries(), earlier, trust.public)
            result = extension.chain
        else:
            extension, result = None, ReadService(container).verify()
    finally:
        container.close()
    if extension is not None and earlier is not None:
        _report_extension(extension, earlier, trust)
    if result.ok:
        extends = f"; extends checkpoint {earlier.position}, signed by " \
            f"{trust.signer(earlier.key_id)}" if earlier else ""
        print(f"ok: verified {result.verified_through} events; head hash "
              f"{result.head_hash}{extends}")
        return
    print(f"MISMATCH at position {result.first_mismatch}: {result.reason} "
          f"(verified through {result.verified_through})")
    raise typer.Exit(1)


@dataclass(frozen=True)
class Trust:
    """What a checkpoint's signature is checked by: a key the auditor gave, or (by choice) the
    key embedded in the checkpoint, or nothing trusted."""

    public: bytes | None
    embedded: bool

    @property
    def trusted(self) -> bool:
        return self.public is not None or self.embedded

    def signer(self, key_id: str) -> str:
        if self.public is not None:
            return f"the trusted key {key_id}"
        return f"the key {key_id} embedded in it (trusted: --trust-embedded-key)"

    def unverified(self, what: str, key_id: str) -> str:
        return (f"UNVERIFIED: {what}, but its signature was checked only by the key embedded "
                f"in it ({key_id}), which whoever wrote it chose: pass the service's key with "
                "--public-key (GET /v1/integrity/public-key), or --trust-embedded-key")


def _trust(public_key: str | None, trust_embedded_key: bool) -> Trust:
    if public_key is not None and trust_embedded_key:
        err.print("give --public-key or --trust-embedded-key, not both", soft_wrap=True)
        raise typer.Exit(2)
    try:
        public = read_public_key(public_key) if public_key is not None else None
    except ValueError as error:
        err.print(f"--public-key: not an Ed25519 public key: {error}", soft_wrap=True,
                  markup=False)
        raise typer.Exit(2) from None
    return Trust(public, trust_embedded_key)


def _earlier_checkpoint(against: Path | None) -> Checkpoint | None:
    try:
        return Checkpoint.from_json(json.loads(against.read_text())) if against else None
    except (ValueError, KeyError, TypeError) as error:
        err.print(f"{against}: not a chipledger checkpoint (JSON with position, hash, "
                  f"recorded_at, signed_at, key_id, public_key, signature): {error}")
        raise typer.Exit(2) from None


def _report_extension(extension: Extension, earlier: Checkpoint, trust: Trust) -> None:
    """Exit 1 unless the log extends `earlier` and its signature was checked by trust."""
    if not extension.ok:
        print(f"MISMATCH against checkpoint at position {extension.checkpoint_position}: "
              f"{extension.reason}")
        raise typer.Exit(1)
    if not trust.trusted:
        print(trust.unverified(f"the log extends checkpoint {earlier.position}",
                               earlier.key_id))
        raise typer.Exit(1)


def _verify_bundle(file: Path, trust: Trust, earlier: Checkpoint | None) -> None:
    try:
        result = verify_bundle(file, trusted_public=trust.public, against=earlier,
                               trust_embedded=trust.embedded)
    except BundleError as error:
        print(f"NOT A BUNDLE: {error}")
        raise typer.Exit(1) from None
    if not result.ok:
        for problem in result.problems:
            print(f"MISMATCH: {problem}")
        raise typer.Exit(1)
    holds = f"{file} holds {result.entries} events, chain intact"
    if result.checkpoint is None:
        print(f"UNVERIFIED: {holds}, but it carries no signed checkpoint: nothing says who "
              "wrote it")
        raise typer.Exit(1)
    if not result.key_trusted:
        print(trust.unverified(holds, result.checkpoint.key_id))
        raise typer.Exit(1)
    print(f"ok: {holds}, signed checkpoint ok, by {trust.signer(result.checkpoint.key_id)}")


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


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=err)


cli.command()(proof_commands.witness)
cli.command("witness-key")(proof_commands.witness_key)


def main() -> None:
    cli()
