"""PostgreSQL: our recorder seals events under the library's table lock, in its transaction."""

from collections.abc import Sequence
from typing import Any

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

from infra.postgres.dialect import TYPES, PostgresDialect
from infra.schema import IDEMPOTENCY, SEALS, Qualify, Rendering
from infra.seal import seal_batch
from infra.sealing import (
    OutdatedLedgerError,
    after_sealing,
    seal_head,
    seal_in_transaction,
    sealable,
)


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
