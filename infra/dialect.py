"""What the backend-neutral stores ask of a database: the `Dialect` each backend implements
(infra.postgres, infra.sqlite) and the `PageReader` that streams the log fast on it.

The stores write one SQL text for both backends; a dialect says what differs (placeholders,
table names, how ids and times are stored, the clock, the few statements written apart).
"""

from collections.abc import Generator, Iterable, Iterator
from contextlib import AbstractContextManager
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from infra.schema import Column, TableNames
from infra.seal import Seal
from infra.verify import ChainRow

# The columns a set-based write names, as the registry declares them (infra.schema).
Columns = tuple[Column, ...]
# (position, topic, state) of a sealed event: what folding the log reads.
StateRow = tuple[int, str, bytes]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...
    def executemany(self, sql: Any, params: Any, /) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> Any: ...


class PageReader(Protocol):
    """The log read a page at a time for verification and replay: each backend reads it
    its fastest way (plain tuples, binary, the next page read while this one is used)."""

    def chain_pages(self, after: int, page: int) -> Generator[Iterable[ChainRow], None, None]:
        """Everything verification hashes after a position, in position order (ChainRow)."""
        ...

    def state_pages(self, upto: int, page: int) -> Iterator[Iterable[StateRow]]:
        """(position, topic, state) of every sealed event up to a position, in log order."""
        ...

    def canonical_time(self, value: Any) -> str:
        """A recorded_at of chain_pages in the text the chain hashes (format_time's)."""
        ...


class Dialect(TableNames, Protocol):
    events_table: str  # the library's, as the backend's SQL writes it
    events_id: str  # the events table's notification id column
    byte_order: str  # appended to a text column to compare and order it as bytes

    def sql(self, statement: str) -> str: ...
    def db_now(self, cursor: Cursor) -> datetime: ...
    def to_db_time(self, moment: datetime) -> Any: ...
    def from_db_time(self, value: Any) -> datetime: ...
    def to_db_date(self, value: date | None) -> Any: ...
    def from_db_date(self, value: Any) -> date | None: ...
    def to_db_uuid(self, value: UUID) -> Any: ...
    def from_db_uuid(self, value: Any) -> UUID: ...
    def transaction(self, *, commit: bool) -> AbstractContextManager[Cursor]: ...
    def insert_seals(self, cursor: Cursor, seals: list[Seal]) -> None: ...
    def pages(self) -> PageReader: ...

    def id_rows(self, values: list[UUID]) -> tuple[str, tuple[Any, ...]]:
        """A row source `w(id, n)` of the ids with their 1-based index in `values`, and its
        parameters: the ids drive index probes whatever the planner knows of the tables."""
        ...

    def rows_with_match(self, source: str, probe: str) -> str:
        """The `w.n` of each row of `source` for which `probe` (correlated on `w.id`) finds
        a row, each probe an index lookup."""
        ...

    def rows_joined(self, source: str, rows: str, column: str) -> str:
        """`source` joined to the rows of `rows` whose `column` is `w.id`, as `x`."""
        ...

    def tuples(self, cursor: Cursor, statement: str,
               params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Run a read of index probes (see rows_with_match) and give its rows as tuples."""
        ...

    def insert_many(self, cursor: Cursor, table: str, columns: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        """Insert rows (values in the database's form) in one statement where the database
        can take columns as arrays."""
        ...

    def update_many(self, cursor: Cursor, table: str, assign: Columns, match: Columns,
                    rows: list[tuple[Any, ...]]) -> None:
        """Set `assign` where every `match` column equals the row's value; each row gives the
        assigned values, then the matched ones."""
        ...

    def claim_lock(self, alias: str) -> str:
        """What ends a SELECT that claims rows of `alias` for one worker among several: rows
        another worker holds are skipped, not waited for."""
        ...


def read_rows(dialect: Dialect, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of one statement, in a read-only transaction of its own."""
    with dialect.transaction(commit=False) as cursor:
        cursor.execute(dialect.sql(statement), params)
        return list(cursor.fetchall())


def database_now(dialect: Dialect) -> datetime:
    """The database's clock, read in a transaction of its own: before a write, as SQLite's
    pool won't lend a reader inside one."""
    with dialect.transaction(commit=False) as cursor:
        return dialect.db_now(cursor)
