"""PostgreSQL's page readers: the log read for verification and replay in binary, seals by
position and their events by one range of ids, the next page read while the caller uses this
one."""

from collections.abc import Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextvars import copy_context
from operator import itemgetter
from typing import Any, TypeVar

import psycopg
from psycopg.abc import Loader
from psycopg.pq import Format
from psycopg.rows import tuple_row
from psycopg.types.string import ByteaBinaryLoader

from infra.dialect import Cursor, Dialect, StateRow
from infra.seal import format_time
from infra.verify import ChainRow


class PostgresPages:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect

    def chain_pages(self, after: int, page: int) -> Generator[Iterable[ChainRow], None, None]:
        return _read_ahead(self._chain_pages(after, page))

    def state_pages(self, upto: int, page: int) -> Iterator[Iterable[StateRow]]:
        return _read_ahead(self._state_pages(upto, page))

    def canonical_time(self, value: Any) -> str:
        if isinstance(value, bytes):
            value = _TIMESTAMPTZ.load(value)  # read raw: see _chain_pages
        return format_time(self.dialect.from_db_time(value))

    def _state_pages(
        self, upto: int, page: int
    ) -> Generator[Iterable[StateRow], None, None]:
        """Seals by position, then their events by one range of ids, as in
        chain_pages; read in binary, so each state arrives as the stored bytes."""
        d = self.dialect
        # No upper bound in the WHERE clause, only in the LIMIT: with one, PostgreSQL
        # (without statistics) scanned and sorted every later seal for each page.
        seals = (f"SELECT position, notification_id FROM {d.seals_table} "
                 "WHERE position > %s ORDER BY position LIMIT %s")
        events = (f"SELECT {d.events_id}, topic, state FROM {d.events_table} "
                  f"WHERE {d.events_id} BETWEEN %s AND %s")
        joined = (f"SELECT s.position, e.topic, e.state FROM {d.seals_table} s "
                  f"JOIN {d.events_table} e ON e.{d.events_id} = s.notification_id "
                  "WHERE s.position > %s AND s.position <= %s ORDER BY s.position")
        after = 0
        while after < upto:
            limit = min(page, upto - after)  # positions are integers: no more than this fit
            with d.transaction(commit=False) as cursor:
                plain = _tuple_cursor(cursor)
                sealed = plain.execute(seals, (after, limit), binary=True).fetchall()
                ended = len(sealed) < limit or (bool(sealed) and sealed[-1][0] >= upto)
                if sealed and sealed[-1][0] > upto:  # gaps in the log: stop at `upto`
                    sealed = [s for s in sealed if s[0] <= upto]
                if not sealed:
                    return
                found = _events_in_step(plain, events, list(map(itemgetter(1), sealed)))
                rows: Iterable[StateRow]
                if found is not None:
                    rows = zip(map(itemgetter(0), sealed), map(itemgetter(1), found),
                               map(itemgetter(2), found), strict=True)
                else:
                    rows = plain.execute(joined, (after, sealed[-1][0]), binary=True).fetchall()
            yield rows
            if ended:
                return
            after = sealed[-1][0]

    def _chain_pages(
        self, after: int, page: int
    ) -> Generator[Iterable[ChainRow], None, None]:
        """A page of seals by position, then their events by one range of ids, paired in
        order: a join walks an index per row and costs several times both scans."""
        d = self.dialect
        seal_columns = (
            "s.position, s.recorded_at, s.originator_id::text, s.originator_version, "
            "s.notification_id, s.prev_hash, s.hash, s.recorded_by"  # uuid_out: str(UUID)'s form
        )
        seals = (f"SELECT {seal_columns} FROM {d.seals_table} s "
                 "WHERE s.position > %s ORDER BY s.position LIMIT %s")
        events = (f"SELECT {d.events_id}, topic, state FROM {d.events_table} "
                  f"WHERE {d.events_id} BETWEEN %s AND %s")
        joined = (f"SELECT {seal_columns}, e.topic, e.state FROM {d.seals_table} s "
                  f"JOIN {d.events_table} e ON e.{d.events_id} = s.notification_id "
                  "WHERE s.position > %s AND s.position <= %s ORDER BY s.position")
        while True:
            with d.transaction(commit=False) as cursor:
                plain = _tuple_cursor(cursor)
                # binary, with the time left as its 8 bytes: building a zoned datetime per row
                # costs more than the rest of the row; canonical_time does it once per commit
                plain.adapters.register_loader("timestamptz", ByteaBinaryLoader)
                sealed = plain.execute(seals, (after, page), binary=True).fetchall()
                if not sealed:
                    return
                last = sealed[-1][0]
                found = _events_in_step(plain, events, list(map(itemgetter(4), sealed)))
                rows: Iterable[ChainRow]
                if found is not None:
                    # lazily: zip reuses its pair when the caller unpacks it
                    rows = zip(sealed, found, strict=True)
                else:  # out of step (or rows gone): the join says what pairs up
                    rows = [((p, t, o, v, n, ph, h, by), (n, topic, state)) for p, t, o, v, n, ph,
                            h, by, topic, state in plain.execute(joined, (after, last),
                                                                 binary=True)]
            yield rows
            if len(sealed) < page:
                return
            after = last


def _tuple_cursor(cursor: Cursor) -> "psycopg.Cursor[tuple[Any, ...]]":
    """A cursor on the same connection (and transaction) giving plain tuples."""
    assert isinstance(cursor, psycopg.Cursor)
    return cursor.connection.cursor(row_factory=tuple_row)


def _events_in_step(
    cursor: "psycopg.Cursor[tuple[Any, ...]]", statement: str, ids: list[int]
) -> list[tuple[Any, ...]] | None:
    """The rows `statement` reads for a range of notification ids (id first), one for each
    of `ids` in their order; None when the ids are not nearly a range or the rows do not
    pair up, for the caller's join to say what does. A range scan and a pairing in order
    cost several times less than a join, which walks an index per row."""
    if max(ids) - min(ids) >= 2 * len(ids):
        return None
    by_id = itemgetter(0)
    # no ORDER BY: without statistics PostgreSQL sorts the range on disk; heap order is id
    # order in an append-only table, and a page that is not gets sorted here
    found = cursor.execute(statement, (min(ids), max(ids)), binary=True).fetchall()
    if list(map(by_id, found)) != ids:
        found.sort(key=by_id)
    return found if list(map(by_id, found)) == ids else None


def _binary_loader(type_name: str) -> Loader:
    """psycopg's own loader of a type, as a cursor would use it; without a connection its
    zone is UTC, which format_time converts to anyway."""
    oid = psycopg.adapters.types[type_name].oid
    loader = psycopg.adapters.get_loader(oid, Format.BINARY)
    assert loader is not None
    return loader(oid)


_TIMESTAMPTZ = _binary_loader("timestamptz")

_Page = TypeVar("_Page")


def _read_ahead(pages: Generator[_Page, None, None]) -> Generator[_Page, None, None]:
    """Yield each page while a thread reads the next: the database's work and the wait for it
    (outside the GIL) overlap the caller's. The thread reads in the caller's context, so
    under the caller's database deadline (infra.deadlines)."""
    with ThreadPoolExecutor(1, thread_name_prefix="chipledger-read-ahead") as reader:
        upcoming = reader.submit(copy_context().run, _next_page, pages)
        try:
            while (current := upcoming.result()) is not None:
                upcoming = reader.submit(copy_context().run, _next_page, pages)
                yield current
        finally:
            wait([upcoming])  # a generator can't be closed while it runs
            pages.close()  # the caller stopped early: let go of the connection now


def _next_page(pages: Generator[_Page, None, None]) -> _Page | None:
    return next(pages, None)
