"""One projection runner per database: the lead of a projection, which a runner takes or, when
another process has it, waits on.

On PostgreSQL the lead is a session advisory lock (the running runner holds it on its LISTEN
connection, a one-off catch-up on a connection of its own). On SQLite it is an exclusive flock
on a file beside the database: the kernel lets it go when its process dies, and two runners in
one process exclude each other as well (each opens the file anew).
"""

import fcntl
import math
import os
import zlib
from pathlib import Path
from typing import Protocol

import psycopg

from infra.bootstrap import Container


class Lead(Protocol):
    def take(self) -> bool:
        """Take the lead if no one holds it; True while this one does."""
        ...

    def release(self) -> None: ...


class FileLead:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.descriptor: int | None = None

    def take(self) -> bool:
        if self.descriptor is None:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                return False
            self.descriptor = descriptor
        return True

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)  # closing the only descriptor lets the flock go
            self.descriptor = None


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


class _Alone:
    """An in-memory SQLite database: no other process can open it."""

    def take(self) -> bool:
        return True

    def release(self) -> None:
        pass


def advisory_key(schema: str, name: str) -> int:
    return zlib.crc32(f"chipledger:{schema}:{name}".encode())


def projection_lead(container: Container, name: str) -> Lead:
    settings = container.settings
    if settings.backend == "sqlite":
        database = settings.database_url.removeprefix("sqlite:///")
        if "mode=memory" in database or database.startswith(":memory:"):
            return _Alone()
        path = database.removeprefix("file:").split("?")[0] or "chipledger.db"
        return FileLead(Path(f"{path}.{name}-runner.lock"))
    schema = getattr(container.store.dialect, "schema", "public")
    return AdvisoryLead(settings.database_url.split("?")[0], advisory_key(schema, name),
                        max(2, math.ceil(settings.database_timeout)))
