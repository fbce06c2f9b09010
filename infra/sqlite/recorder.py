"""SQLite: the embedded default. Our recorder seals events in the writer's transaction."""

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from infra.schema import IDEMPOTENCY, SEALS
from infra.sealing import OutdatedLedgerError, seal_in_transaction
from infra.sqlite.dialect import RENDERING, SQLiteDialect

_REFUSE = "SELECT RAISE(ABORT, 'chipledger: the ledger is append-only; {op} on {table} refused')"


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
