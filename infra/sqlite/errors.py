"""Which of SQLite's errors say the database could not be used now (see infra.deadlines)."""

import sqlite3

# What sqlite3 raises for a database locked or unopenable (and for some refusals too).
ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
_UNAVAILABLE = ("database is locked", "database table is locked",
                "unable to open database file", "disk i/o error")


def unavailable(error: BaseException) -> bool | None:
    """True for a database locked or unopenable, False for another error of sqlite3's, None
    for an error not of sqlite3's."""
    if isinstance(error, sqlite3.OperationalError):
        return str(error).lower().startswith(_UNAVAILABLE)
    return False if isinstance(error, sqlite3.Error) else None
