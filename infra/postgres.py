"""PostgreSQL: our recorder seals events under the library's table lock, in its transaction."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from psycopg import Copy
from psycopg import Cursor as PgCursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from infra.schema import IDEMPOTENCY, SEALS, ColumnType, Qualify, Rendering, TableNames
from infra.seal import Seal, seal_batch
from infra.store import (
    Columns,
    Cursor,
    OutdatedLedgerError,
    after_sealing,
    seal_head,
    seal_in_transaction,
    sealable,
)

# The registry's neutral column types as PostgreSQL names them (infra.schema).
TYPES: dict[ColumnType, str] = {"text": "text", "integer": "integer", "bigint": "bigint",
                                "date": "date", "timestamp": "timestamptz", "uuid": "uuid",
                                "json": "jsonb"}


class PostgresDialect(TableNames):
    events_id = "notification_id"
    lateral_probes = True

    def __init__(self, datastore: PostgresDatastore, events_table_name: str) -> None:
        self.datastore = datastore
        schema = datastore.schema
        self.schema = schema
        self.events_table = f'"{schema}"."{events_table_name}"'
        self.name_tables(Qualify(schema))

    def claim_lock(self, alias: str) -> str:
        return f" FOR UPDATE OF {alias} SKIP LOCKED"

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


def _ddl(dialect: PostgresDialect) -> list[str]:
    """Our tables (rendered from infra.schema), then the append-only triggers."""
    rendering = Rendering("postgres", TYPES, Qualify(dialect.schema))
    refuse = f'"{dialect.schema}".chipledger_refuse_change'
    statements = [
        *rendering.tables(),
        f"CREATE OR REPLACE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'chipledger: the ledger is append-only; % on % refused', "
        "TG_OP, TG_TABLE_NAME USING ERRCODE = 'integrity_constraint_violation'; END $$",
    ]
    for name, table in rendering.append_only(dialect.events_table):
        statements += [
            f"CREATE OR REPLACE TRIGGER chipledger_{name}_immutable BEFORE UPDATE OR DELETE "
            f"ON {table} FOR EACH ROW EXECUTE FUNCTION {refuse}()",
            f"CREATE OR REPLACE TRIGGER chipledger_{name}_no_truncate BEFORE TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION {refuse}()",
        ]
    return statements


class SealingPostgresRecorder(PostgresApplicationRecorder):
    """The library's application recorder, each commit sealed in its transaction.

    insert_events is our own: the library's catches an exception raised inside its
    transaction block and re-raises it after the block, so the transaction commits; here an
    exception anywhere in a commit (the insert, the seals, a side table, an answer) rolls it
    back. The steps are the library's: the table locked, the channel notified, the events
    inserted, in one pipelined transaction."""

    # From this many events a commit is copied rather than inserted: COPY costs a few more
    # round trips (it cannot be pipelined) and pays for itself within a few hundred events.
    copy_threshold = 200

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            raise ProgrammingError("POSTGRES_ENABLE_DB_FUNCTIONS skips the table lock and the "
                                   "seals: refusing to run with it")
        self.dialect = PostgresDialect(datastore, self.events_table_name)
        self.sql_create_statements += [SQL(s) for s in _ddl(self.dialect)]  # type: ignore[misc]
        # The library runs these in one transaction. Processes starting together (serve
        # --processes, replicas, workers) deadlocked on CREATE OR REPLACE TRIGGER, or collided
        # creating the same table: they take turns on a lock of this schema's instead.
        self.sql_create_statements.insert(0, SQL(
            "SELECT pg_advisory_xact_lock(hashtext('chipledger-ddl'), hashtext({}))"
        ).format(self.dialect.schema))
        # Rows come back in the order unnest gives them, as the library's own insert assumes.
        self._insert_arrays = SQL(
            f"INSERT INTO {self.dialect.events_table} "
            "(originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id")
        # n ids are n distinct values: when they span exactly n numbers (no other writer
        # drew from the sequence meanwhile, as the lock ensures) the range says which, and
        # otherwise the list comes too
        self._next_ids = SQL(
            "SELECT min(id) AS first, max(id) AS last, CASE WHEN max(id) - min(id) + 1 <> "
            "count(*) THEN array_agg(id ORDER BY id) END AS ids FROM (SELECT nextval(s.seq) "
            "AS id FROM (SELECT pg_get_serial_sequence(%s, 'notification_id')::regclass "
            "AS seq) s, generate_series(1, %s)) n")
        self._copy_events_statement = SQL(
            f"COPY {self.dialect.events_table} (originator_id, originator_version, topic, "
            "state, notification_id) FROM STDIN (FORMAT BINARY)")

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT count(*) AS found FROM information_schema.columns "
                "WHERE table_schema = %s AND ((table_name = %s AND column_name = 'recorded_by') "
                "OR (table_name = %s AND column_name = 'scope'))",
                (self.dialect.schema, SEALS.name, IDEMPOTENCY.name))
            row = curs.fetchone()
        if row is None or row["found"] != 2:
            raise OutdatedLedgerError()

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        if not stored_events:
            return []
        if len(stored_events) < self.copy_threshold:
            return self._insert_pipelined(stored_events, kwargs)
        return self._copy_events(stored_events, kwargs)

    def _insert_pipelined(self, stored_events: Sequence[StoredEvent],
                          kwargs: dict[str, Any]) -> list[int]:
        with self.datastore.get_connection() as conn, conn.pipeline() as pipeline, \
                conn.transaction(), conn.cursor() as curs:
            self._insert_stored_events(curs, stored_events)
            # Sync now, so a uniqueness conflict raises IntegrityError here (as the library
            # does) rather than something else at the commit
            pipeline.sync()
            ids = list(self._fetch_ids_after_insert_events(curs, stored_events) or ())
            seal_in_transaction(self.dialect, curs, list(stored_events), ids, kwargs)
        return ids

    def _copy_events(self, stored_events: Sequence[StoredEvent],
                     kwargs: dict[str, Any]) -> list[int]:
        """A large commit by binary COPY, under the library's lock and in one transaction
        with its seals. The notification ids are drawn from the table's own sequence while
        the lock is held, in the events' order, as the library's insert draws them: insert
        order stays commit order. The chain is hashed while the server takes in the rows."""
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._lock_table(curs)
            self._notify_channel(curs)
            ids = self._draw_ids(curs, len(stored_events))
            last_position, last_hash, recorded_at = seal_head(self.dialect, curs)
            events = sealable(stored_events, ids, kwargs)
            with curs.copy(self._copy_events_statement) as copy:
                self._copy_stored_events(copy, stored_events, ids)
                seals = seal_batch(last_position, last_hash, recorded_at, events)
            self.dialect.copy_seals(curs, seals)
            after_sealing(self.dialect, curs, seals, recorded_at, kwargs)
        return ids

    def _draw_ids(self, curs: PgCursor[DictRow], count: int) -> list[int]:
        curs.execute(self._next_ids, (self.dialect.events_table, count), binary=True)
        drawn = curs.fetchone()
        assert drawn is not None
        if drawn["ids"] is None:
            return list(range(drawn["first"], drawn["last"] + 1))
        return list(drawn["ids"])

    def _copy_stored_events(self, copy: Copy, stored_events: Sequence[StoredEvent],
                            ids: list[int]) -> None:
        copy.set_types(["uuid", "int8", "text", "bytea", "int8"])
        for event, nid in zip(stored_events, ids, strict=True):
            copy.write_row((event.originator_id, event.originator_version, event.topic,
                            event.state, nid))

    def _insert_stored_events(
        self, curs: PgCursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """The library's insert, with its lock and notify, but the events sent as four binary
        arrays: its composite-row array is dumped as text, escaped field by field, which
        dominated bulk ingest."""
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(self._insert_arrays, (
            [e.originator_id for e in stored_events],
            [e.originator_version for e in stored_events],
            [e.topic for e in stored_events],
            [e.state for e in stored_events],
        ), binary=True)
