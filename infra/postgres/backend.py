"""PostgreSQL's side of infra.lead: the lead is a session advisory lock (the running runner
holds it on its LISTEN connection, a one-off catch-up on a connection of its own), and a
runner sleeps on LISTEN for the library's NOTIFY, polling as a fallback."""

import math
import threading
import zlib
from contextlib import suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
import structlog

from infra.lead import UnreachableError, first_line
from infra.settings import Settings

log = structlog.get_logger("chipledger.runner")


def advisory_key(schema: str, name: str) -> int:
    return zlib.crc32(f"chipledger:{schema}:{name}".encode())


class AdvisoryLead:
    def __init__(self, conninfo: str, key: int, connect_timeout: int) -> None:
        self.conninfo, self.key, self.connect_timeout = conninfo, key, connect_timeout
        self.conn: psycopg.Connection[tuple[object, ...]] | None = None

    def take(self) -> bool:
        if self.conn is None:
            conn = psycopg.connect(self.conninfo, autocommit=True,
                                   connect_timeout=self.connect_timeout)
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if not (row and row[0]):
                conn.close()
                return False
            self.conn = conn
        return True

    def release(self) -> None:
        if self.conn is not None:
            self.conn.close()  # the session's advisory locks go with it
            self.conn = None


class ListeningWaiter:
    """LISTEN for the library's NOTIFY on each append; poll as a fallback. Holds the
    projection's advisory lock on the same connection: only one runner leads."""

    def __init__(self, conninfo: str, channel: str, lock_key: int, poll_interval: float,
                 connect_timeout: int = 5) -> None:
        self.conninfo, self.channel, self.lock_key = conninfo, channel, lock_key
        self.poll_interval = poll_interval
        self.connect_timeout = connect_timeout
        self.conn: psycopg.Connection[Any] | None = None
        self.leading = False

    def _connect(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.conninfo, autocommit=True,
                                        connect_timeout=self.connect_timeout)
            self.conn.execute(f'LISTEN "{self.channel}"')
            self.leading = False
        return self.conn

    def lead(self) -> bool:
        try:
            conn = self._connect()
            if not self.leading:
                row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.lock_key,)).fetchone()
                self.leading = bool(row and row[0])
                if self.leading:
                    log.info("projection_lead_taken", lock=self.lock_key)
        except psycopg.Error:
            log.warning("projection_listen_connection_lost")
            self.close()
            return False
        return self.leading

    def wait(self, stop: threading.Event) -> None:
        try:
            for _ in self._connect().notifies(timeout=self.poll_interval, stop_after=1):
                break
        except psycopg.Error:
            self.close()
            stop.wait(self.poll_interval)

    def close(self) -> None:
        if self.conn is not None:
            with suppress(psycopg.Error):
                self.conn.close()
        self.conn, self.leading = None, False


class PostgresBackend:
    name = "postgres"

    def __init__(self, settings: Settings, channel: str = "stored_events") -> None:
        self.settings = settings
        self.channel = channel  # the library's NOTIFY channel: its events table's name
        self.url = urlsplit(settings.database_url)
        query = dict(p.split("=", 1) for p in self.url.query.split("&") if "=" in p)
        self.schema = query.get("schema", "public")
        self.conninfo = settings.database_url.split("?")[0]
        # libpq counts whole seconds, at least 2
        self.connect_timeout = max(2, math.ceil(settings.database_timeout))

    def lead(self, projection: str) -> AdvisoryLead:
        return AdvisoryLead(self.conninfo, advisory_key(self.schema, projection),
                            self.connect_timeout)

    def waiter(self, projection: str, poll_interval: float) -> ListeningWaiter:
        return ListeningWaiter(self.conninfo, self.channel,
                               advisory_key(self.schema, projection), poll_interval,
                               self.connect_timeout)

    def signing_key_path(self) -> Path:
        return Path("chipledger-signing-key.pem")

    def library_env(self) -> dict[str, str]:
        s, url = self.settings, self.url
        return {
            "PERSISTENCE_MODULE": "infra.postgres.deadlines:DeadlinePostgresFactory",
            "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_SCHEMA": self.schema,
            "POSTGRES_POOL_SIZE": str(s.postgres_pool_size),
            "POSTGRES_MAX_OVERFLOW": str(s.postgres_max_overflow),
            "POSTGRES_LOCK_TIMEOUT": str(s.postgres_lock_timeout),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
            "APPLICATION_RECORDER_TOPIC": "infra.postgres.recorder:SealingPostgresRecorder",
        }

    def probe(self) -> None:
        """One plain connection: the pool would only say it got no connection in time,
        where psycopg says why (refused, unknown host, no such database, authentication)."""
        env = self.library_env()
        try:
            psycopg.connect(host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
                            dbname=env["POSTGRES_DBNAME"], user=env["POSTGRES_USER"],
                            password=env["POSTGRES_PASSWORD"],
                            connect_timeout=self.connect_timeout).close()
        except psycopg.Error as error:
            raise UnreachableError(
                f"cannot connect to PostgreSQL at {self.where()}: {first_line(error)}; check "
                "CHIPLEDGER_DATABASE_URL and that the server is running and reachable"
            ) from error

    def where(self) -> str:
        url = self.url
        user = f"{url.username}@" if url.username else ""
        port = f":{url.port}" if url.port else ""
        query = f"?{url.query}" if url.query else ""
        return f"{url.scheme}://{user}{url.hostname or ''}{port}{url.path}{query}"

    def cannot_open(self, reason: str) -> str:
        return (f"cannot prepare the PostgreSQL database {self.where()}: {reason}; check "
                "CHIPLEDGER_DATABASE_URL (the schema must exist and the user may create tables)")
