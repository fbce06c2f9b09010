"""The installed distribution's version: one source for `chipledger --version` and the
OpenAPI document."""

from importlib.metadata import PackageNotFoundError, version


def chipledger_version() -> str:
    try:
        return version("chipledger")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0+unknown"
