"""PostgreSQL's dialect: how the backend-neutral stores' SQL is written and run on it."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg import Cursor as PgCursor
from psycopg.rows import DictRow

from infra.dialect import Columns, Cursor, PageReader
from infra.postgres.pages import PostgresPages
from infra.schema import ColumnType, Qualify, TableNames
from infra.seal import Seal

# The registry's neutral column types as PostgreSQL names them (infra.schema).
TYPES: dict[ColumnType, str] = {"text": "text", "integer": "integer", "bigint": "bigint",
                                "date": "date", "timestamp": "timestamptz", "uuid": "uuid",
                                "json": "jsonb", "bytes": "bytea"}


class PostgresDialect(TableNames):
    # Ids in byte order, as Python sorts them: a locale collation would skip the hyphens.
    byte_order = ' COLLATE "C"'
    events_id = "notification_id"

    def __init__(self, datastore: PostgresDatastore, events_table_name: str) -> None:
        self.datastore = datastore
        schema = datastore.schema
        self.schema = schema
        self.events_table = f'"{schema}"."{events_table_name}"'
        self.name_tables(Qualify(schema))

    def sql(self, statement: str) -> str:
        return statement

    def db_now(self, cursor: Cursor) -> datetime:
        cursor.execute("SELECT clock_timestamp() AS now")
        now: datetime = cursor.fetchone()["now"]
        return now

    def to_db_time(self, moment: datetime) -> datetime:
        return moment

    def from_db_time(self, value: Any) -> datetime:
        assert isinstance(value, datetime)
        return value

    def to_db_date(self, value: date | None) -> date | None:
        return value

    def from_db_date(self, value: Any) -> date | None:
        assert value is None or isinstance(value, date)
        return value

    def insert_many(self, cursor: Cursor, table: str, columns: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        # COPY, not INSERT ... unnest(arrays): psycopg builds arrays of parameters in Python,
        # a COPY row in C; a rebuild writes a finding or more per event.
        names = ", ".join(column.name for column in columns)
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row(row)

    def update_many(self, cursor: Cursor, table: str, assign: Columns, match: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = (*assign, *match)
        arrays = ", ".join(f"%s::{TYPES[column.type]}[]" for column in columns)
        names = ", ".join(f"c{i}" for i in range(len(columns)))
        sets = ", ".join(f"{column.name} = c.c{i}" for i, column in enumerate(assign))
        where = " AND ".join(f"t.{column.name} = c.c{i}" for i, column in
                             enumerate(columns) if i >= len(assign))
        cursor.execute(f"UPDATE {table} AS t SET {sets} FROM unnest({arrays}) AS c({names}) "
                       f"WHERE {where}", [list(column) for column in zip(*rows, strict=True)])

    def id_rows(self, values: list[UUID]) -> tuple[str, tuple[Any, ...]]:
        # A nested loop over the array, not `= ANY(array)`: without statistics (the events
        # table's autovacuum is held back) the planner scanned whole tables for ANY.
        return "unnest(%b::uuid[]) WITH ORDINALITY AS w(id, n)", (values,)

    def to_db_uuid(self, value: UUID) -> UUID:
        return value

    def from_db_uuid(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(str(value))

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    def insert_seals(self, cursor: Cursor, seals: list[Seal]) -> None:
        """One statement for the whole commit: arrays unnested server-side, not a round trip
        (or a pipelined statement) per event."""
        cursor.execute(
            f"INSERT INTO {self.seals_table} (position, notification_id, originator_id, "
            "originator_version, recorded_at, prev_hash, hash, recorded_by) SELECT * FROM "
            "unnest(%b::bigint[], %b::bigint[], %b::uuid[], %b::bigint[], %b::timestamptz[], "
            "%b::text[], %b::text[], %b::text[])",
            (
                [s.position for s in seals],
                [s.notification_id for s in seals],
                [s.originator_id for s in seals],
                [s.originator_version for s in seals],
                [s.recorded_at for s in seals],
                [s.prev_hash for s in seals],
                [s.hash for s in seals],
                [s.recorded_by.canonical for s in seals],
            ),
        )

    def copy_seals(self, cursor: PgCursor[DictRow], seals: list[Seal]) -> None:
        """The seals by binary COPY: rows formatted in C, no arrays built and unnested."""
        with cursor.copy(f"COPY {self.seals_table} (position, notification_id, originator_id, "
                         "originator_version, recorded_at, prev_hash, hash, recorded_by) "
                         "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int8", "uuid", "int8", "timestamptz", "text", "text",
                            "text"])
            for s in seals:
                copy.write_row((s.position, s.notification_id, s.originator_id,
                                s.originator_version, s.recorded_at, s.prev_hash, s.hash,
                                s.recorded_by.canonical))

    def pages(self) -> PageReader:
        return PostgresPages(self)

    # Joins that must probe indexes row by row are written as LATERAL subqueries: the
    # planner, without statistics, otherwise hashes whole tables.

    def rows_with_match(self, source: str, probe: str) -> str:
        return f"SELECT w.n FROM {source} CROSS JOIN LATERAL ({probe} LIMIT 1) AS x"

    def rows_joined(self, source: str, rows: str, column: str) -> str:
        return f"{source} CROSS JOIN LATERAL ({rows} WHERE {column} = w.id OFFSET 0) AS x"

    def tuples(self, cursor: Cursor, statement: str,
               params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        # The probes' cost is guessed without statistics at hundreds of rows each:
        # PostgreSQL then compiled the plan (JIT), 30 times the probes' own time.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(statement, params)
        return [tuple(row.values()) for row in cursor.fetchall()]

    def claim_lock(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"
