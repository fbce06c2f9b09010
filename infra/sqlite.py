"""SQLite: the embedded default. Our recorder seals events in the writer's transaction."""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from infra.merkle.tree_store import IMMUTABLE as MERKLE_IMMUTABLE
from infra.merkle.tree_store import ddl as merkle_ddl
from infra.seal import Seal, format_time, parse_time
from infra.store import (
    ALARMS,
    API_KEYS,
    ATTEMPTS,
    CHECKPOINTS,
    DELIVERIES,
    ENDPOINTS,
    FINDINGS,
    IDEMPOTENCY,
    OUTBOX,
    RESIDENCY,
    SEALS,
    SECRETS,
    SIGNING_KEY,
    TRACKING,
    Columns,
    Cursor,
    OutdatedLedgerError,
    seal_in_transaction,
)

_REFUSE = "SELECT RAISE(ABORT, 'chipledger: the ledger is append-only; {op} on {table} refused')"


class SQLiteDialect:
    events_table = "stored_events"
    events_id = "rowid"
    lateral_probes = False
    seals_table = SEALS
    idempotency_table = IDEMPOTENCY
    api_keys_table = API_KEYS
    findings_table = FINDINGS
    tracking_table = TRACKING
    residency_table = RESIDENCY
    checkpoints_table = CHECKPOINTS
    outbox_table = OUTBOX
    endpoints_table = ENDPOINTS
    secrets_table = SECRETS
    deliveries_table = DELIVERIES
    attempts_table = ATTEMPTS
    alarms_table = ALARMS
    signing_key_table = SIGNING_KEY

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    def sql(self, statement: str) -> str:
        return statement.replace("%s", "?")

    def db_now(self, cursor: Cursor) -> datetime:
        cursor.execute("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now') AS now")
        text = cursor.fetchone()["now"]
        return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)

    def to_db_time(self, moment: datetime) -> str:
        return format_time(moment)

    def from_db_time(self, value: Any) -> datetime:
        return parse_time(value)

    def to_db_date(self, value: date | None) -> str | None:
        return value.isoformat() if value else None

    def from_db_date(self, value: Any) -> date | None:
        return date.fromisoformat(value) if value else None

    def to_db_uuid(self, value: UUID) -> str:
        return value.hex

    def from_db_uuid(self, value: Any) -> UUID:
        return UUID(value)

    def insert_many(self, cursor: Cursor, table: str, columns: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        if rows:  # SQLite runs in-process: executemany is already set-at-a-time
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(n for n, _ in columns)}) "
                               f"VALUES ({marks})", rows)

    def update_many(self, cursor: Cursor, table: str, assign: Columns, match: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        if rows:
            sets = ", ".join(f"{name} = ?" for name, _ in assign)
            where = " AND ".join(f"{name} = ?" for name, _ in match)
            cursor.executemany(f"UPDATE {table} SET {sets} WHERE {where}", rows)

    def id_rows(self, values: list[UUID]) -> tuple[str, tuple[Any, ...]]:
        # One JSON array parameter: no limit on the number of ids, as `IN (?, ...)` has
        return ("(SELECT value AS id, key + 1 AS n FROM json_each(?)) AS w",
                (json.dumps([v.hex for v in values]),))

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor.sqlite_cursor

    def insert_seals(self, cursor: Cursor, seals: list[Seal]) -> None:
        cursor.executemany(
            f"INSERT INTO {self.seals_table} (position, notification_id, originator_id, "
            "originator_version, recorded_at, prev_hash, hash, recorded_by) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(s.position, s.notification_id, s.originator_id.hex, s.originator_version,
              format_time(s.recorded_at), s.prev_hash, s.hash, s.recorded_by.canonical)
             for s in seals],
        )


def _immutable(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN {_REFUSE.format(op=op, table=table)}; END"
        for op in ("UPDATE", "DELETE")
    ]


class SealingSQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name)
        self.dialect = SQLiteDialect(datastore)

    def construct_create_table_statements(self) -> list[str]:
        return [
            *super().construct_create_table_statements(),
            f"CREATE TABLE IF NOT EXISTS {SEALS} ("
            "position INTEGER PRIMARY KEY, notification_id INTEGER NOT NULL UNIQUE, "
            "originator_id TEXT NOT NULL, originator_version INTEGER NOT NULL, "
            "recorded_at TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, "
            "recorded_by TEXT NOT NULL, UNIQUE (originator_id, originator_version))",
            # Enough for position_at's (recorded_at, position) order: position is the rowid,
            # which ends every SQLite index (PostgreSQL needs it named: see infra.postgres).
            f"CREATE INDEX IF NOT EXISTS {SEALS}_recorded_at ON {SEALS} (recorded_at)",
            f"CREATE TABLE IF NOT EXISTS {IDEMPOTENCY} (scope TEXT NOT NULL, key TEXT NOT NULL, "
            "request_hash TEXT NOT NULL, status INTEGER NOT NULL, answer TEXT NOT NULL, "
            "created_at TEXT NOT NULL, PRIMARY KEY (scope, key))",
            f"CREATE TABLE IF NOT EXISTS {API_KEYS} (key_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "role TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, "
            "revoked_at TEXT)",
            f"CREATE TABLE IF NOT EXISTS {FINDINGS} (firm_id TEXT NOT NULL, "
            "subject_type TEXT NOT NULL, subject_id TEXT NOT NULL, regulation_id TEXT NOT NULL, "
            "valid_from TEXT NOT NULL, valid_to TEXT, status TEXT NOT NULL, "
            "recorded_from_position INTEGER NOT NULL, recorded_to_position INTEGER, "
            "recorded_from TEXT NOT NULL, recorded_to TEXT, citation TEXT NOT NULL, "
            "explanation TEXT NOT NULL, evidence TEXT NOT NULL, PRIMARY KEY (subject_type, "
            "subject_id, regulation_id, valid_from, recorded_from_position))",
            f"CREATE INDEX IF NOT EXISTS {FINDINGS}_firm ON {FINDINGS} "
            "(firm_id, recorded_from_position, valid_from)",
            f"CREATE INDEX IF NOT EXISTS {FINDINGS}_open ON {FINDINGS} (firm_id, valid_from) "
            "WHERE recorded_to_position IS NULL",
            f"CREATE TABLE IF NOT EXISTS {RESIDENCY} (firm_id TEXT NOT NULL, "
            "activity_id TEXT NOT NULL, data_subject_country TEXT NOT NULL, "
            "valid_from TEXT NOT NULL, valid_to TEXT, processed_in TEXT, "
            "recorded_from_position INTEGER NOT NULL, recorded_to_position INTEGER, "
            "recorded_from TEXT NOT NULL, recorded_to TEXT, PRIMARY KEY (activity_id, "
            "data_subject_country, valid_from, recorded_from_position))",
            f"CREATE INDEX IF NOT EXISTS {RESIDENCY}_firm ON {RESIDENCY} "
            "(firm_id, recorded_from_position, valid_from)",
            f"CREATE TABLE IF NOT EXISTS {TRACKING} (name TEXT PRIMARY KEY, "
            "position INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (position INTEGER PRIMARY KEY, "
            "hash TEXT NOT NULL, signed_at TEXT NOT NULL, body TEXT NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {OUTBOX} (message_id TEXT PRIMARY KEY, "
            "position INTEGER NOT NULL, seq INTEGER NOT NULL UNIQUE, event_type TEXT NOT NULL, "
            "ordering_key TEXT NOT NULL, "
            "payload TEXT NOT NULL, created_at TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {OUTBOX}_position ON {OUTBOX} (position)",
            f"CREATE TABLE IF NOT EXISTS {ENDPOINTS} (endpoint_id TEXT PRIMARY KEY, "
            "url TEXT NOT NULL, event_types TEXT NOT NULL, description TEXT, "
            "enabled INTEGER NOT NULL, created_at TEXT NOT NULL, disabled_at TEXT, "
            "disabled_reason TEXT, from_position INTEGER NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {SECRETS} (endpoint_id TEXT NOT NULL, "
            "secret TEXT NOT NULL, fingerprint TEXT NOT NULL, created_at TEXT NOT NULL, "
            "expires_at TEXT, PRIMARY KEY (endpoint_id, fingerprint))",
            f"CREATE TABLE IF NOT EXISTS {DELIVERIES} (endpoint_id TEXT NOT NULL, "
            "message_id TEXT NOT NULL, seq INTEGER NOT NULL, ordering_key TEXT NOT NULL, "
            "status TEXT NOT NULL, attempts INTEGER NOT NULL, next_attempt_at TEXT, "
            "claimed_until TEXT, claimed_by TEXT, last_status_code INTEGER, last_error TEXT, "
            "created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
            "PRIMARY KEY (endpoint_id, message_id))",
            f"CREATE INDEX IF NOT EXISTS {DELIVERIES}_due ON {DELIVERIES} "
            "(status, next_attempt_at)",
            f"CREATE INDEX IF NOT EXISTS {DELIVERIES}_order ON {DELIVERIES} "
            "(endpoint_id, ordering_key, seq)",
            f"CREATE TABLE IF NOT EXISTS {ATTEMPTS} (endpoint_id TEXT NOT NULL, "
            "message_id TEXT NOT NULL, attempt INTEGER NOT NULL, at TEXT NOT NULL, "
            "status_code INTEGER, latency_ms INTEGER NOT NULL, error TEXT, "
            "PRIMARY KEY (endpoint_id, message_id, attempt))",
            f"CREATE TABLE IF NOT EXISTS {ALARMS} (component TEXT NOT NULL, key TEXT NOT NULL, "
            "reason TEXT NOT NULL, position INTEGER, raised_at TEXT NOT NULL, "
            "PRIMARY KEY (component, key))",
            f"CREATE TABLE IF NOT EXISTS {SIGNING_KEY} (singleton INTEGER PRIMARY KEY "
            "CHECK (singleton = 1), key_id TEXT NOT NULL, public_key TEXT NOT NULL, "
            "registered_at TEXT NOT NULL)",
            *_immutable(self.events_table_name),
            *_immutable(SEALS),
            *_immutable(CHECKPOINTS),
            *_immutable(SIGNING_KEY),
            *merkle_ddl(str),
            *(trigger for table in MERKLE_IMMUTABLE for trigger in _immutable(table)),
        ]

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=False) as c:
            found = {(table, row["name"]) for table in (SEALS, IDEMPOTENCY)
                     for row in c.sqlite_cursor.execute(f"PRAGMA table_info({table})")}
        if not {(SEALS, "recorded_by"), (IDEMPOTENCY, "scope")} <= found:
            raise OutdatedLedgerError()

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The events and their seals in the writer's transaction, which the library rolls
        back when anything in it raises."""
        ids = self._insert_stored_events(c, stored_events)
        seal_in_transaction(self.dialect, c.sqlite_cursor, list(stored_events), ids, kwargs)
        return ids

    def _insert_stored_events(self, c: SQLiteCursor,
                              stored_events: Sequence[StoredEvent]) -> list[int]:
        ids = super()._insert_events(c, stored_events)
        assert ids is not None
        return list(ids)
