"""SQLite's dialect: how the backend-neutral stores' SQL is written and run on it."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.sqlite import SQLiteDatastore

from infra.dialect import Columns, Cursor, PageReader
from infra.schema import ColumnType, Qualify, Rendering, TableNames
from infra.seal import Seal, format_time, parse_time
from infra.sqlite.pages import SQLitePages

# The registry's neutral column types as SQLite stores them (infra.schema): times, dates and
# ids as text, in the forms the dialect's to_db_* methods write.
TYPES: dict[ColumnType, str] = {"text": "TEXT", "integer": "INTEGER", "bigint": "INTEGER",
                                "date": "TEXT", "timestamp": "TEXT", "uuid": "TEXT",
                                "json": "TEXT", "bytes": "BLOB"}
RENDERING = Rendering("sqlite", TYPES, Qualify())


class SQLiteDialect(TableNames):
    byte_order = ""  # SQLite compares text as bytes (BINARY) unless told otherwise
    events_table = "stored_events"
    events_id = "rowid"

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

    def pages(self) -> PageReader:
        return SQLitePages(self)

    # No LATERAL in SQLite, whose planner probes by index anyway.

    def rows_with_match(self, source: str, probe: str) -> str:
        return f"SELECT w.n FROM {source} WHERE EXISTS ({probe})"

    def rows_joined(self, source: str, rows: str, column: str) -> str:
        return f"{source} JOIN ({rows}) AS x ON x.{column.rsplit('.', 1)[-1]} = w.id"

    def tuples(self, cursor: Cursor, statement: str,
               params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor.execute(statement, params)
        return [tuple(row) for row in cursor.fetchall()]
