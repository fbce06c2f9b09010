"""PostgreSQL's side of infra.deadlines: connections whose waits end at the call's deadline,
and a pool whose checkouts do."""

import math
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import psycopg_pool
from eventsourcing.postgres import ConnectionPool, PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment, EnvType
from psycopg.abc import RV, PQGen
from psycopg.rows import DictRow

from infra.deadlines import (
    DatabaseTimeoutError,
    answered,
    call_timeout,
    current_calls,
    env_timeout,
    is_unavailable,
)

# How long the pool keeps retrying a connection before it lets the slot go (a later checkout
# starts again with a short delay): its backoff doubles, up to minutes at psycopg's default.
RECONNECT_SECONDS = 10.0


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
        calls = current_calls()
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
                    answered()  # refused, say, but answered
                raise
        answered()


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


class DeadlinePostgresFactory(PostgresFactory):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        self.datastore.pool = _bounded_pool(self.datastore, env_timeout(self.env))  # type: ignore[assignment]
