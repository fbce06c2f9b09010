"""The composition root: the one place where settings become a Ledger on a real backend.

The database URL is mapped once onto the eventsourcing library's environment, and the backend
is checked after construction: the library's default (in-memory POPO) must never slip in.
"""

from dataclasses import dataclass
from urllib.parse import urlsplit

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from domain.application import Ledger
from infra.alarms import Alarms
from infra.deadlines import TIMEOUT_KEY
from infra.lead import Backend
from infra.postgres import SealingPostgresRecorder
from infra.postgres.backend import PostgresBackend
from infra.postgres.deadlines import DeadlinePostgresFactory
from infra.postgres.dialect import PostgresDialect
from infra.replicas import ReadReplica, ReplicaSet
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


def read_replicas(settings: Settings, events_table_name: str) -> list[ReadReplica]:
    """The standbys of CHIPLEDGER_READ_DATABASE_URLS, each with a pool of its own (opened on
    first use: a standby that is down does not stop the service starting)."""
    replicas = []
    for url in settings.read_urls:
        datastore = DeadlinePostgresFactory(
            library_env(settings.model_copy(update={"database_url": url}))).datastore
        parts = urlsplit(url)
        replicas.append(ReadReplica(f"{parts.hostname}:{parts.port or 5432}",
                                    PostgresDialect(datastore, events_table_name),
                                    datastore.close))
    return replicas


@dataclass
class Container:
    """What the entry points use: the Ledger, a reader of the sealed log, the alarms, what
    the backend offers processes sharing the database (leads, wake-ups), and where reads of
    the read models run (the primary, or a read replica that has replayed far enough)."""

    settings: Settings
    ledger: Ledger
    store: LogStore
    alarms: Alarms
    backend: Backend
    reads: ReplicaSet

    def close(self) -> None:
        self.ledger.close()
        self.reads.close()


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
    replicas = read_replicas(settings, getattr(recorder, "events_table_name", "")) \
        if settings.read_urls else []
    return Container(settings, ledger, store, Alarms(recorder.dialect), backend,
                     ReplicaSet(store, replicas))
