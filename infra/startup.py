"""What a process does before its work: read and check its settings, reach its database, find
its signing key. Each way this can fail is a StartupError whose message is one line saying what
to fix; the command line prints it and exits 2 (infra.startup knows nothing of exit codes)."""

import math
import os
from collections.abc import Mapping
from urllib.parse import urlsplit

import psycopg
from pydantic import ValidationError

from infra.bootstrap import Container, bootstrap, library_env
from infra.checkpoints import (
    SigningKey,
    SigningKeyMismatchError,
    signing_key_for,
    signing_key_path,
)
from infra.settings import ENV_PREFIX, Settings, unknown_variables, unknown_variables_message


class StartupError(Exception):
    """A process cannot start; str() is the one line to show."""


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, refusing unknown CHIPLEDGER_* names and bad values."""
    unknown = unknown_variables(os.environ if environ is None else environ)
    if unknown:
        raise StartupError(unknown_variables_message(unknown))
    try:
        return Settings()
    except ValidationError as error:
        raise StartupError(_bad_settings(error)) from error


def _bad_settings(error: ValidationError) -> str:
    parts = []
    for problem in error.errors():
        field = "_".join(str(p) for p in problem["loc"])
        # a database URL may hold a password: named, not shown
        given = "" if field == "database_url" else f"={problem['input']!r}"
        parts.append(f"{ENV_PREFIX}{field.upper()}{given}: {problem['msg']}")
    return "bad setting " + "; ".join(parts)


def open_database(settings: Settings) -> Container:
    """The container on a database that answers, with its tables in place."""
    if settings.backend == "postgres":
        _probe_postgres(settings)
    try:
        return bootstrap(settings)
    except Exception as error:
        raise StartupError(_database_problem(settings, error)) from error


def _probe_postgres(settings: Settings) -> None:
    """One plain connection first: the pool would only say it got no connection in time,
    where psycopg says why (refused, unknown host, no such database, authentication)."""
    env = library_env(settings)
    try:
        psycopg.connect(host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                        dbname=env["POSTGRES_DBNAME"], user=env["POSTGRES_USER"],
                        password=env["POSTGRES_PASSWORD"],
                        connect_timeout=max(2, math.ceil(settings.database_timeout))).close()
    except psycopg.Error as error:
        raise StartupError(
            f"cannot connect to PostgreSQL at {database_name(settings)}: {_first_line(error)}; "
            "check CHIPLEDGER_DATABASE_URL and that the server is running and reachable"
        ) from error


def _database_problem(settings: Settings, error: Exception) -> str:
    where = database_name(settings)
    if settings.backend == "sqlite":
        return (f"cannot open the SQLite database {where}: {_first_line(error)}; check "
                "CHIPLEDGER_DATABASE_URL (its directory must exist and be writable)")
    return (f"cannot prepare the PostgreSQL database {where}: {_first_line(error)}; check "
            "CHIPLEDGER_DATABASE_URL (the schema must exist and the user may create tables)")


def database_name(settings: Settings) -> str:
    """The database URL without its password, for messages."""
    if settings.backend == "sqlite":
        return settings.database_url.removeprefix("sqlite:///")
    parts = urlsplit(settings.database_url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{user}{parts.hostname or ''}{port}{parts.path}{query}"


def signing_key(container: Container) -> SigningKey:
    """The key this process signs checkpoints with, created on first start, which must be the
    one its database registered."""
    path = signing_key_path(container)
    try:
        return signing_key_for(container)
    except SigningKeyMismatchError as error:
        raise StartupError(str(error)) from error
    except OSError as error:
        where = f" ({error.filename})" if error.filename and str(error.filename) != str(path) \
            else ""
        raise StartupError(
            f"cannot create or read the signing key file {path}: {error.strerror or error}"
            f"{where}; set CHIPLEDGER_SIGNING_KEY_FILE to a file this user can write (it is "
            "created on first start)") from error
    except (ValueError, TypeError, RuntimeError) as error:
        raise StartupError(
            f"the signing key file {path} does not hold an Ed25519 private key in PEM "
            f"({_first_line(error)}); restore it, or point CHIPLEDGER_SIGNING_KEY_FILE "
            "elsewhere") from error


def _first_line(error: BaseException) -> str:
    text = " ".join(str(error).split("\n", 1)[0].split())
    return text or type(error).__name__
