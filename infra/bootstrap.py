"""The composition root: the one place where settings become a Ledger on a real backend.

The database URL is mapped once onto the eventsourcing library's environment, and the backend
is checked after construction: the library's default (in-memory POPO) must never slip in.
"""

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from domain.application import Ledger
from infra.alarms import Alarms
from infra.deadlines import TIMEOUT_KEY
from infra.dialect import Dialect
from infra.postgres import SealingPostgresRecorder
from infra.postgres.deadlines import DeadlinePostgresFactory
from infra.postgres.dialect import PostgresDialect
from infra.settings import Settings
from infra.sqlite import SealingSQLiteRecorder
from infra.store import LogStore

SQLITE_RECORDER = "infra.sqlite.recorder:SealingSQLiteRecorder"
POSTGRES_RECORDER = "infra.postgres.recorder:SealingPostgresRecorder"
# The library's factories, with the deadlines of infra.deadlines on their connections
SQLITE_FACTORY = "infra.sqlite.deadlines:DeadlineSQLiteFactory"
POSTGRES_FACTORY = "infra.postgres.deadlines:DeadlinePostgresFactory"


def library_env(settings: Settings) -> dict[str, str]:
    """The eventsourcing environment for our database URL."""
    url = settings.database_url
    timeout = {TIMEOUT_KEY: str(settings.database_timeout)}
    if settings.backend == "sqlite":
        return {
            "PERSISTENCE_MODULE": SQLITE_FACTORY,
            "SQLITE_DBNAME": url.removeprefix("sqlite:///") or "chipledger.db",
            "APPLICATION_RECORDER_TOPIC": SQLITE_RECORDER,
            **timeout,
        }
    parts = urlsplit(url)
    query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return {
        "PERSISTENCE_MODULE": POSTGRES_FACTORY,
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": query.get("schema", "public"),
        "POSTGRES_POOL_SIZE": str(settings.postgres_pool_size),
        "POSTGRES_MAX_OVERFLOW": str(settings.postgres_max_overflow),
        "POSTGRES_LOCK_TIMEOUT": str(settings.postgres_lock_timeout),
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
        "APPLICATION_RECORDER_TOPIC": POSTGRES_RECORDER,
        **timeout,
    }


@dataclass(frozen=True)
class ReadReplica:
    """A hot standby of the primary, read through the same dialect (infra.replicas)."""

    name: str  # host:port, as /readyz and /metrics name it
    dialect: Dialect
    datastore: object

    def close(self) -> None:
        self.datastore.close()  # type: ignore[attr-defined]


def read_replicas(settings: Settings, events_table_name: str) -> list[ReadReplica]:
    """The standbys of CHIPLEDGER_READ_DATABASE_URLS, each with a pool of its own (opened on
    first use: a standby that is down does not stop the service starting)."""
    replicas = []
    for url in settings.read_urls:
        env = library_env(settings.model_copy(update={"database_url": url}))
        datastore = DeadlinePostgresFactory(env).datastore
        parts = urlsplit(url)
        replicas.append(ReadReplica(f"{parts.hostname}:{parts.port or 5432}",
                                    PostgresDialect(datastore, events_table_name), datastore))
    return replicas


@dataclass
class Container:
    """What the entry points use: the Ledger, a reader of the sealed log, the alarms, and the
    read replicas when there are any."""

    settings: Settings
    ledger: Ledger
    store: LogStore
    alarms: Alarms
    replicas: list[ReadReplica] = field(default_factory=list)

    def close(self) -> None:
        self.ledger.close()
        for replica in self.replicas:
            replica.close()


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
    replicas = read_replicas(settings, recorder.events_table_name) \
        if settings.read_urls else []
    return Container(settings, ledger, store, Alarms(recorder.dialect), replicas)
