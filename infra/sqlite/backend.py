"""SQLite's side of infra.lead: an exclusive flock on a file beside the database (the kernel
lets it go when its process dies, and two runners in one process exclude each other as well:
each opens the file anew); a runner polls."""

import fcntl
import os
import threading
from pathlib import Path

from infra.lead import Lead
from infra.settings import Settings


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


class _Alone:
    """An in-memory SQLite database: no other process can open it."""

    def take(self) -> bool:
        return True

    def release(self) -> None:
        pass


class PollingWaiter:
    """SQLite's: polls, and works only while holding the projection's lock file."""

    def __init__(self, poll_interval: float, lead: Lead) -> None:
        self.poll_interval = poll_interval
        self.lead_ = lead

    def lead(self) -> bool:
        return self.lead_.take()

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.poll_interval)

    def close(self) -> None:
        self.lead_.release()


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.database = settings.database_url.removeprefix("sqlite:///")

    def lead(self, projection: str) -> Lead:
        if "mode=memory" in self.database or self.database.startswith(":memory:"):
            return _Alone()
        path = self.database.removeprefix("file:").split("?")[0] or "chipledger.db"
        return FileLead(Path(f"{path}.{projection}-runner.lock"))

    def waiter(self, projection: str, poll_interval: float) -> PollingWaiter:
        return PollingWaiter(poll_interval, self.lead(projection))

    def signing_key_path(self) -> Path:
        return Path(self.database + ".signing-key.pem")

    def library_env(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": "infra.sqlite.deadlines:DeadlineSQLiteFactory",
            "SQLITE_DBNAME": self.database or "chipledger.db",
            "APPLICATION_RECORDER_TOPIC": "infra.sqlite.recorder:SealingSQLiteRecorder",
        }

    def probe(self) -> None:
        pass  # a file in this process: opening it says all there is to say

    def where(self) -> str:
        return self.database

    def cannot_open(self, reason: str) -> str:
        return (f"cannot open the SQLite database {self.where()}: {reason}; check "
                "CHIPLEDGER_DATABASE_URL (its directory must exist and be writable)")
