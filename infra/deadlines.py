"""Deadlines on the database: each call of a request path is answered in time or fails fast.

A request, a group commit or a readiness check opens a scope (`database_calls`). Within it:

- each wait for one answer of the database (a statement, a pipeline sync, a commit) ends
  after the timeout: the connection is closed, so a late answer is never read, and
  `DatabaseTimeoutError` is raised;
- a pool checkout waits at most what is left of the call's time;
- eventsourcing retries a failed write up to 10 times on OperationalError: the retries of one
  call share its time, and `DatabaseTimeoutError` is not an error the library retries.

Outside a scope (background workers, the command line) calls wait as the library lets them,
bounded only by the connect and lock timeouts. A connection that dies makes the pool drop
the idle ones (the same failure most likely cut them too), and new connections are tried
again within seconds of the database coming back, not minutes.

On SQLite (in-process, no network) the busy timeout and the pool's checkout timeout are the
database timeout. Each backend's connections and pool are in its folder
(infra.postgres.deadlines, infra.sqlite.deadlines); this module holds the calls' clock.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from time import monotonic

from eventsourcing.persistence import ConnectionUnavailableError, InterfaceError, OperationalError
from eventsourcing.utils import Environment

from domain.errors import Unavailable
from infra.postgres.errors import ERRORS as POSTGRES_ERRORS
from infra.postgres.errors import unavailable as postgres_unavailable
from infra.sqlite.errors import ERRORS as SQLITE_ERRORS
from infra.sqlite.errors import unavailable as sqlite_unavailable

TIMEOUT_KEY = "CHIPLEDGER_DATABASE_TIMEOUT"  # our key in the library's environment


class DatabaseTimeoutError(Unavailable):
    """The database did not answer a call in time. Deliberately not an OperationalError:
    the library would retry it, each try waiting the whole timeout again."""

    def __init__(self, timeout: float) -> None:
        super().__init__(f"the database did not answer within {timeout:g} s")
        self.timeout = timeout


@dataclass
class _Calls:
    timeout: float
    started: float | None = None  # when the call not yet answered began (kept over retries)

    def left(self) -> float:
        """The time left to this call; a new call starts its clock."""
        now = monotonic()
        if self.started is None:
            self.started = now
        left = self.started + self.timeout - now
        if left <= 0:
            raise DatabaseTimeoutError(self.timeout)
        return left


_CALLS: ContextVar[_Calls | None] = ContextVar("chipledger_database_calls", default=None)


@contextmanager
def database_calls(timeout: float | None) -> Iterator[None]:
    """Give every database call in this context (and the threads it hands work to through
    contextvars) `timeout` seconds to be answered; None lifts the deadline."""
    token = _CALLS.set(_Calls(timeout) if timeout else None)
    try:
        yield
    finally:
        _CALLS.reset(token)


def call_timeout() -> float | None:
    calls = _CALLS.get()
    return calls.timeout if calls else None


def current_calls() -> _Calls | None:
    """The deadline of the calls in this context, if they have one."""
    return _CALLS.get()


def answered() -> None:
    """The database answered the call: the next call has a clock of its own."""
    calls = _CALLS.get()
    if calls is not None:
        calls.started = None


def env_timeout(env: Environment) -> float:
    return float(env.get(TIMEOUT_KEY) or 5.0)


def database_errors() -> tuple[type[Exception], ...]:
    """What an unreachable or silent database raises, on either backend; is_unavailable sorts
    them from refusals (a syntax error is an sqlite3.OperationalError too)."""
    return (DatabaseTimeoutError, OperationalError, InterfaceError, *POSTGRES_ERRORS,
            *SQLITE_ERRORS)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached or did not answer in time (not
    that it refused what it was asked): the first error in the chain of causes we know."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DatabaseTimeoutError | ConnectionUnavailableError):
            return True
        verdict = postgres_unavailable(seen)
        if verdict is None:
            verdict = sqlite_unavailable(seen)
        if verdict is not None:
            return verdict
        seen = seen.__cause__
    return False
