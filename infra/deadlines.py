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
database timeout.
"""

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from time import monotonic
from typing import Any

import psycopg
import psycopg_pool
from eventsourcing.persistence import ConnectionUnavailableError, InterfaceError, OperationalError
from eventsourcing.postgres import ConnectionPool, PostgresDatastore, PostgresFactory
from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment, EnvType
from psycopg.abc import RV, PQGen
from psycopg.rows import DictRow

from domain.errors import Unavailable

TIMEOUT_KEY = "CHIPLEDGER_DATABASE_TIMEOUT"  # our key in the library's environment
# How long the pool keeps retrying a connection before it lets the slot go (a later checkout
# starts again with a short delay): its backoff doubles, up to minutes at psycopg's default.
RECONNECT_SECONDS = 10.0
_SQLITE_UNAVAILABLE = ("database is locked", "database table is locked",
                       "unable to open database file", "disk i/o error")


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


def database_errors() -> tuple[type[Exception], ...]:
    """What an unreachable or silent database raises, on either backend; is_unavailable sorts
    them from refusals (a syntax error is an sqlite3.OperationalError too)."""
    return (DatabaseTimeoutError, OperationalError, InterfaceError, psycopg.OperationalError,
            psycopg.InterfaceError, sqlite3.OperationalError)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` says the database could not be reached or did not answer in time (not
    that it refused what it was asked): the first error in the chain of causes we know."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, DatabaseTimeoutError | ConnectionUnavailableError):
            return True
        if isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        if isinstance(seen, sqlite3.OperationalError):
            return str(seen).lower().startswith(_SQLITE_UNAVAILABLE)
        if isinstance(seen, psycopg.Error | sqlite3.Error):
            return False
        seen = seen.__cause__
    return False


# PostgreSQL -----------------------------------------------------------------------------------


class DeadlineConnection(psycopg.Connection[DictRow]):
    """A connection whose every wait for the server ends at the call's deadline."""

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        limit = call_timeout()
        if limit is None or (timeout is not None and timeout <= limit):
            return super().wait(gen, interval, timeout)
        try:
            return super().wait(gen, interval, limit)
        except psycopg.errors._WaitTimeout:  # psycopg's own: callers of wait(timeout) convert it
            # Mid-protocol: the connection cannot be used again, and an answer arriving later
            # must never be taken for another statement's.
            self.close()
            raise DatabaseTimeoutError(limit) from None


class DeadlinePool(ConnectionPool[DeadlineConnection]):
    """The library's pool, with checkouts bounded by the call's deadline."""

    def getconn(self, timeout: float | None = None) -> DeadlineConnection:
        calls = _CALLS.get()
        if calls is None:
            return super().getconn(timeout)
        left = calls.left()
        bound = min(left, self.timeout if timeout is None else timeout)
        try:
            return super().getconn(bound)
        except psycopg_pool.PoolTimeout:
            if bound >= left:
                raise DatabaseTimeoutError(calls.timeout) from None
            raise

    @contextmanager
    def connection(self, timeout: float | None = None) -> Iterator[DeadlineConnection]:
        with super().connection(timeout) as conn:
            try:
                yield conn
            except BaseException as error:
                if conn.closed or conn.broken:
                    self.drain()  # idle connections went through the same outage
                if not is_unavailable(error):
                    _answered()  # refused, say, but answered
                raise
        _answered()


def _answered() -> None:
    """The database answered the call: the next call has a clock of its own."""
    calls = _CALLS.get()
    if calls is not None:
        calls.started = None


def _bounded_pool(datastore: PostgresDatastore, timeout: float) -> DeadlinePool:
    """A pool like the library's (not yet opened), with connect and checkout timeouts."""
    old = datastore.pool
    assert isinstance(old.kwargs, dict)  # as PostgresDatastore builds it
    return DeadlinePool(
        connection_class=DeadlineConnection,
        # libpq counts whole seconds, at least 2; it bounds the TCP connect and the handshake
        kwargs={**old.kwargs, "connect_timeout": max(2, math.ceil(timeout))},
        min_size=old.min_size,
        max_size=old.max_size,
        open=False,
        configure=datastore.after_connect_func(),
        timeout=min(old.timeout, timeout),
        max_waiting=old.max_waiting,
        max_lifetime=old.max_lifetime,
        check=ConnectionPool.check_connection if datastore.pre_ping else None,
        reconnect_timeout=RECONNECT_SECONDS,
        get_password_func=old.get_password_func,
    )


def _timeout(env: Environment) -> float:
    return float(env.get(TIMEOUT_KEY) or 5.0)


class DeadlinePostgresFactory(PostgresFactory):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.datastore.pool = _bounded_pool(self.datastore, _timeout(self.env))  # type: ignore[assignment]


# SQLite ---------------------------------------------------------------------------------------


class DeadlineSQLiteFactory(SQLiteFactory):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        timeout = _timeout(self.env)
        pool: Any = self.datastore.pool  # no connection is made before the first checkout
        pool.lock_timeout = timeout  # sqlite3's busy timeout: waiting on another writer
        pool.pool_timeout = timeout  # waiting for this process's writer or a free connection
