"""SQLite's page readers: one join a page (a rowid lookup per seal is cheap in-process), rows
read as plain tuples."""

import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any
from uuid import UUID

from infra.dialect import Cursor, Dialect, StateRow
from infra.seal import reformat_time
from infra.store import page_of_log
from infra.verify import ChainRow


class SQLitePages:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def canonical_time(self, value: Any) -> str:
        return reformat_time(value)  # SQLite's from_db_time is parse_time

    def state_pages(self, upto: int, page: int) -> Iterator[list[StateRow]]:
        d = self.dialect
        statement = d.sql(page_of_log(d, "s.position, e.topic, e.state", upto=True))
        after = 0
        while after < upto:
            with d.transaction(commit=False) as cursor:
                rows: list[StateRow] = _plain(cursor).execute(
                    statement, (after, upto, page)).fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def chain_pages(self, after: int, page: int) -> Generator[Iterable[ChainRow], None, None]:
        """One join a page (a rowid lookup per seal is cheap in-process), ids (stored as hex)
        turned into str(UUID)'s form."""
        d = self.dialect
        joined = d.sql(
            "SELECT s.position, s.recorded_at, s.originator_id, s.originator_version, "
            "s.notification_id, s.prev_hash, s.hash, s.recorded_by, e.topic, e.state "
            f"FROM {d.seals_table} s JOIN {d.events_table} e "
            f"ON e.{d.events_id} = s.notification_id "
            "WHERE s.position > %s ORDER BY s.position LIMIT %s"
        )
        from_db_uuid = d.from_db_uuid
        while True:
            with d.transaction(commit=False) as cursor:
                rows: list[ChainRow] = [
                    ((p, t, _uuid_text(o, from_db_uuid), v, n, ph, h, by), (n, topic, state))
                    for p, t, o, v, n, ph, h, by, topic, state
                    in _plain(cursor).execute(joined, (after, page)).fetchall()
                ]
            if rows:
                yield rows
            if len(rows) < page:
                return
            after = rows[-1][0][0]


def _plain(cursor: Cursor) -> sqlite3.Cursor:
    """A cursor on the same connection (and transaction) giving tuples, not sqlite3.Row."""
    assert isinstance(cursor, sqlite3.Cursor)  # what SQLiteDialect.transaction yields
    plain = cursor.connection.cursor()
    plain.row_factory = None
    return plain


_HEX = "0123456789abcdef"


def _uuid_text(stored: Any, from_db_uuid: Callable[[Any], UUID]) -> str:
    """str(from_db_uuid(stored)), without building a UUID when `stored` is already what
    UUID.hex writes (32 lowercase hex digits), the only form we store."""
    if type(stored) is str and len(stored) == 32 and not stored.strip(_HEX):
        return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"
    return str(from_db_uuid(stored))
