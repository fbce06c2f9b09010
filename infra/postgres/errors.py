"""Which of PostgreSQL's errors say the database could not be reached (see infra.deadlines)."""

import psycopg

# What psycopg raises when the database cannot be reached (or answers too late).
ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)


def unavailable(error: BaseException) -> bool | None:
    """True for a connection lost or refused, False for another error of psycopg's (the
    database answered: it refused), None for an error not of psycopg's."""
    if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError):
        return True
    return False if isinstance(error, psycopg.Error) else None
