"""What a process does before its work: read and check its settings, reach its database, find
its signing key. Each way this can fail is a StartupError whose message is one line saying what
to fix; the command line prints it and exits 2 (infra.startup knows nothing of exit codes)."""

import os
from collections.abc import Mapping

from pydantic import ValidationError

from infra.bootstrap import Container, backend_for, bootstrap
from infra.checkpoints import (
    SigningKey,
    SigningKeyMismatchError,
    signing_key_for,
    signing_key_path,
)
from infra.lead import UnreachableError, first_line
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
    backend = backend_for(settings)
    try:
        backend.probe()
    except UnreachableError as error:
        raise StartupError(str(error)) from error
    try:
        return bootstrap(settings)
    except Exception as error:
        raise StartupError(backend.cannot_open(first_line(error))) from error


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
            f"({first_line(error)}); restore it, or point CHIPLEDGER_SIGNING_KEY_FILE "
            "elsewhere") from error
