"""SQLite: the embedded default. Our recorder seals events in the writer's transaction."""

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from infra.schema import IDEMPOTENCY, SEALS, ColumnType, Qualify, Rendering, TableNames
from infra.seal import Seal, format_time, parse_time
from infra.store import (
    Columns,
    Cursor,
    OutdatedLedgerError,
    seal_in_transaction,
)

_REFUSE = "SELECT RAISE(ABORT, 'chipledger: the ledger is append-only; {op} on {table} refused')"


# The registry's neutral column types as SQLite stores them (infra.schema): times, dates and
# ids as text, in the forms the dialect's to_db_* methods write.
TYPES: dict[ColumnType, str] = {"text": "TEXT", "integer": "INTEGER", "bigint": "INTEGER",
                                "date": "TEXT", "timestamp": "TEXT", "uuid": "TEXT",
                                "json": "TEXT"}
RENDERING = Rendering("sqlite", TYPES, Qualify())


class SQLiteDialect(TableNames):
    events_table = "stored_events"
    events_id = "rowid"
    lateral_probes = False

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore
        self.name_tables(RENDERING.qualify)

    def claim_lock(self, alias: str) -> str:
        # Writes are serialised: a claim that raced another process's is refused (busy)
        # when it writes, and tried again on the next round.
        return ""

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
            cursor.executemany(f"INSERT INTO {table} ({', '.join(c.name for c in columns)}) "
                               f"VALUES ({marks})", rows)

    def update_many(self, cursor: Cursor, table: str, assign: Columns, match: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        if rows:
            sets = ", ".join(f"{column.name} = ?" for column in assign)
            where = " AND ".join(f"{column.name} = ?" for column in match)
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
        """The library's table, ours (rendered from infra.schema), the append-only triggers."""
        return [
            *super().construct_create_table_statements(),
            *RENDERING.tables(),
            *(statement for _, table in RENDERING.append_only(self.events_table_name)
              for statement in _immutable(table)),
        ]

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=False) as c:
            found = {(table, row["name"]) for table in (SEALS.name, IDEMPOTENCY.name)
                     for row in c.sqlite_cursor.execute(f"PRAGMA table_info({table})")}
        if not {(SEALS.name, "recorded_by"), (IDEMPOTENCY.name, "scope")} <= found:
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
