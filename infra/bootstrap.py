"""The composition root: the one place where settings become a Ledger on a real backend.

The database URL is mapped once onto the eventsourcing library's environment, and the backend
is checked after construction: the library's default (in-memory POPO) must never slip in.
"""

from dataclasses import dataclass

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from domain.application import Ledger
from infra.alarms import Alarms
from infra.deadlines import TIMEOUT_KEY
from infra.lead import Backend
from infra.postgres import SealingPostgresRecorder
from infra.postgres.backend import PostgresBackend
from infra.settings import Settings
from infra.sqlite import SealingSQLiteRecorder
from infra.sqlite.backend import SQLiteBackend
from infra.store import LogStore


def backend_for(settings: Settings, channel: str | None = None) -> Backend:
    """The backend the database URL names: the one place one is chosen."""
    if settings.backend == "sqlite":
        return SQLiteBackend(settings)
    return PostgresBackend(settings, channel or "stored_events")


def library_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for our database URL, with our deadline on its calls."""
    return {**backend_for(settings).library_env(),
            TIMEOUT_KEY: str(settings.database_timeout)}


@dataclass
class Container:
    """What the entry points use: the Ledger, a reader of the sealed log, the alarms, and
    what the backend offers processes sharing the database (leads, wake-ups)."""

    settings: Settings
    ledger: Ledger
    store: LogStore
    alarms: Alarms
    backend: Backend

    def close(self) -> None:
        self.ledger.close()


def bootstrap(settings: Settings | None = None) -> Container:
    settings = settings or Settings()
    ledger = Ledger(env=library_env(settings))
    recorder = ledger.recorder
    expected = (SealingSQLiteRecorder, SQLiteApplicationRecorder) if settings.backend == "sqlite" \
        else (SealingPostgresRecorder, PostgresApplicationRecorder)
    if not isinstance(recorder, (SealingSQLiteRecorder, SealingPostgresRecorder)) or not \
            isinstance(recorder, expected):
        raise RuntimeError(f"unexpected recorder {type(recorder).__name__} for "
                           f"{settings.backend}: refusing to run unsealed")
    store = LogStore(recorder.dialect)
    ledger.batch_reads = store
    backend = backend_for(settings, getattr(recorder, "channel_name", None))
    return Container(settings, ledger, store, Alarms(recorder.dialect), backend)
