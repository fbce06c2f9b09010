"""Reading and writing our tables beside the library's events table, on either backend.

One class does the work; a `Dialect` holds what differs between SQLite and PostgreSQL
(placeholders, table names, how ids and times are stored, the database clock).
"""

import json
import sqlite3
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager
from contextvars import copy_context
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from operator import itemgetter
from typing import Any, Protocol, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresDatastore
from psycopg.abc import Loader
from psycopg.pq import Format
from psycopg.rows import tuple_row
from psycopg.types.string import ByteaBinaryLoader

from domain.aggregates import TOPIC_TO_TYPE
from domain.kinds import KIND_BY_EVENT_TYPE
from infra.schema import Column, TableNames
from infra.seal import (
    RecordedBy,
    Seal,
    Sealable,
    Submission,
    format_time,
    reformat_time,
    seal_batch,
)
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


class Dialect(TableNames, Protocol):
    events_table: str  # the library's, as the backend's SQL writes it
    events_id: str  # the events table's notification id column
    # Whether joins that must probe indexes row by row are written as LATERAL subqueries:
    # PostgreSQL's planner, without statistics, otherwise hashes whole tables; SQLite has
    # no LATERAL and probes by index anyway.
    lateral_probes: bool

    def sql(self, statement: str) -> str: ...
    def db_now(self, cursor: Cursor) -> datetime: ...
    def to_db_time(self, moment: datetime) -> Any: ...
    def from_db_time(self, value: Any) -> datetime: ...
    def to_db_date(self, value: date | None) -> Any: ...
    def from_db_date(self, value: Any) -> date | None: ...
    def to_db_uuid(self, value: UUID) -> Any: ...
    def from_db_uuid(self, value: Any) -> UUID: ...
    def transaction(self, *, commit: bool) -> AbstractContextManager[Cursor]: ...
    def claim_lock(self, alias: str) -> str:
        """What ends a SELECT that claims rows of `alias` for one worker among several: rows
        another worker holds are skipped, not waited for."""
        ...
    def insert_seals(self, cursor: Cursor, seals: list[Seal]) -> None: ...
    def id_rows(self, values: list[UUID]) -> tuple[str, tuple[Any, ...]]:
        """A row source `w(id, n)` of the ids with their 1-based index in `values`, and its
        parameters: the ids drive index probes whatever the planner knows of the tables."""
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


@dataclass(frozen=True)
class LogEntry:
    """One event of the log with its seal."""

    position: int
    recorded_at: datetime
    originator_id: UUID
    originator_version: int
    topic: str
    state: bytes
    prev_hash: str
    hash: str
    recorded_by: RecordedBy

    @property
    def type(self) -> str:
        return TOPIC_TO_TYPE.get(self.topic, self.topic)

    @property
    def kind(self) -> str:
        return KIND_BY_EVENT_TYPE[self.type].kind

    @property
    def payload(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.state)
        return decoded

    @property
    def record_id(self) -> str:
        return str(self.payload["record_id"])

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.payload["data"])


class UnattributedEventError(Exception):
    """A commit held an event that no submission says it sent: nothing of it is written."""

    def __str__(self) -> str:
        return "every event must say who recorded it: pass the request's Submission"


class OutdatedLedgerError(Exception):
    """The database was written by an earlier chipledger whose log this one does not read."""

    def __str__(self) -> str:
        return ("this database holds a log sealed by an earlier chipledger (hash chain "
                "sha256-chain-v1, events without recorded_by), which this version does not "
                "read: point CHIPLEDGER_DATABASE_URL at a new database")


def seal_in_transaction(
    dialect: Dialect,
    cursor: Cursor,
    stored_events: list[StoredEvent],
    notification_ids: list[int],
    kwargs: dict[str, Any],
) -> list[Seal]:
    """Seal just-inserted events and write what goes with them, in the events' transaction.

    Called while the writer holds the events table's lock (PostgreSQL) or the database's
    write lock (SQLite), so positions and hashes follow commit order.
    """
    last_position, last_hash, recorded_at = seal_head(dialect, cursor)
    seals = seal_batch(last_position, last_hash, recorded_at,
                       sealable(stored_events, notification_ids, kwargs))
    dialect.insert_seals(cursor, seals)
    after_sealing(dialect, cursor, seals, recorded_at, kwargs)
    return seals


def sealable(stored_events: Sequence[StoredEvent], notification_ids: Sequence[int],
             kwargs: dict[str, Any]) -> list[Sealable]:
    """The events as seal_batch takes them, each with who recorded it."""
    author = authorship(kwargs.get("submissions") or [])
    events = []
    for nid, e in zip(notification_ids, stored_events, strict=True):
        originator_id = as_uuid(e.originator_id)
        events.append((nid, originator_id, e.originator_version, e.topic, e.state,
                       author(originator_id, e.originator_version)))
    return events


def authorship(submissions: list[Submission]) -> Callable[[UUID, int], RecordedBy]:
    """Who recorded each event of a commit: its submission's sender. An event no submission
    claims raises UnattributedEventError, which rolls the commit back."""
    if len(submissions) == 1 and submissions[0].events is None:
        sender = submissions[0].recorded_by
        return lambda *_: sender
    if any(s.events is None for s in submissions):
        raise UnattributedEventError()  # "all of the commit's events" said by one of many
    owners = {event: s.recorded_by for s in submissions for event in s.events or ()}

    def author(originator_id: UUID, version: int) -> RecordedBy:
        found = owners.get((originator_id, version))
        if found is None:
            raise UnattributedEventError()
        return found

    return author


def seal_head(dialect: Dialect, cursor: Cursor) -> tuple[int, str, datetime]:
    """The position and hash the next seal follows, and the time its commit is recorded at:
    the database's clock, never before the last seal's (read under the writer's lock)."""
    cursor.execute(dialect.sql(
        f"SELECT position, hash, recorded_at FROM {dialect.seals_table} "
        "ORDER BY position DESC LIMIT 1"
    ))
    last = cursor.fetchone()
    now = dialect.db_now(cursor)
    if last is None:
        return 0, "0" * 64, now
    return last["position"], last["hash"], max(now, dialect.from_db_time(last["recorded_at"]))


def after_sealing(dialect: Dialect, cursor: Cursor, seals: list[Seal], recorded_at: datetime,
                  kwargs: dict[str, Any]) -> None:
    """What a commit writes beside its seals (the caller's side tables, each request's answer
    under its Idempotency-Key) and hands back (the seals, the answers), in the same
    transaction: if any of it raises, the commit is rolled back."""
    write_side_tables(cursor, seals, kwargs.get("side_write"))
    submissions: list[Submission] = kwargs.get("submissions") or []
    if submissions:
        sealed = {(s.originator_id, s.originator_version): s for s in seals}
        for submission in submissions:
            submission.answer = submission.build(sealed)
    store_answers(dialect, cursor, [s for s in submissions if s.idempotency_key is not None],
                  recorded_at)
    sink: list[Seal] | None = kwargs.get("seals")
    if sink is not None:
        sink.clear()  # the library retries a failed transaction: keep only the last attempt
        sink.extend(seals)


def write_side_tables(cursor: Cursor, seals: list[Seal],
                      side_write: Callable[[Cursor, list[Seal]], None] | None) -> None:
    """The caller's own rows that go with its events (a webhook endpoint and its secret)."""
    if side_write is not None:
        side_write(cursor, seals)


def store_answers(dialect: Dialect, cursor: Cursor, submissions: list[Submission],
                  recorded_at: datetime) -> None:
    """Each answer under its Idempotency-Key, scoped to the API key (or user) that sent it."""
    if submissions:
        cursor.executemany(
            dialect.sql(
                f"INSERT INTO {dialect.idempotency_table} (scope, key, request_hash, status, "
                "answer, created_at) VALUES (%s, %s, %s, %s, %s, %s)"
            ),
            [(s.recorded_by.key_id, s.idempotency_key, s.request_hash, s.status,
              json.dumps(s.answer), dialect.to_db_time(recorded_at)) for s in submissions],
        )


def as_uuid(value: UUID | str) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def page_of_log(d: Dialect, columns: str, *, upto: bool) -> str:
    """A page of the sealed log: the seals after a position (and, with `upto`, at or before
    another), at most a number of them, joined to their events. Parameters: after, [upto,]
    limit.

    The seals are limited before the join, and the events are bounded to the page's range of
    notification ids (a range every seal of the page lies in, so none is lost): otherwise
    PostgreSQL joined the whole rest of the log (no statistics) or scanned every event
    (with statistics) for each page, which made reading the log quadratic."""
    bound = "AND position <= %s " if upto else ""
    return (
        f"WITH s AS (SELECT * FROM {d.seals_table} WHERE position > %s {bound}"
        "ORDER BY position LIMIT %s) "
        f"SELECT {columns} FROM s JOIN {d.events_table} e "
        f"ON e.{d.events_id} = s.notification_id "
        f"WHERE e.{d.events_id} BETWEEN (SELECT min(notification_id) FROM s) "
        "AND (SELECT max(notification_id) FROM s) ORDER BY s.position"
    )


@dataclass(frozen=True)
class StoredAnswer:
    request_hash: str
    status: int
    answer: Any


@dataclass(frozen=True)
class ApiKeyRow:
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None


class LogStore:
    """Reads of the sealed log and our side tables."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        d = dialect
        self._select_entries = (
            f"SELECT s.position, s.recorded_at, s.originator_id, s.originator_version, "
            f"s.prev_hash, s.hash, s.recorded_by, e.topic, e.state FROM {d.seals_table} s "
            f"JOIN {d.events_table} e ON e.{d.events_id} = s.notification_id "
        )

    def _rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.sql(statement), params)
            return list(cursor.fetchall())

    def _tuples(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows as tuples, in one read-only transaction."""
        with self.dialect.transaction(commit=False) as cursor:
            if self.dialect.lateral_probes:
                # The probes' cost is guessed without statistics at hundreds of rows each:
                # PostgreSQL then compiled the plan (JIT), 30 times the probes' own time.
                cursor.execute("SET LOCAL jit = off")
            cursor.execute(self.dialect.sql(statement), params)
            return [tuple(row.values()) if isinstance(row, dict) else tuple(row)
                    for row in cursor.fetchall()]

    def _entry(self, row: Any) -> LogEntry:
        return LogEntry(
            position=row["position"],
            recorded_at=self.dialect.from_db_time(row["recorded_at"]),
            originator_id=self.dialect.from_db_uuid(row["originator_id"]),
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
            prev_hash=row["prev_hash"],
            hash=row["hash"],
            recorded_by=RecordedBy.from_stored(row["recorded_by"]),
        )

    def head(self) -> LogEntry | None:
        rows = self._rows(self._select_entries + "ORDER BY s.position DESC LIMIT 1")
        return self._entry(rows[0]) if rows else None

    def position_at(self, known_at: datetime) -> int:
        """The last position recorded at or before `known_at` (0 when none)."""
        # Not max(position): PostgreSQL answers that by walking the primary key back from the
        # head past every later event. recorded_at never decreases along positions, so the
        # last row in (recorded_at, position) order is the one, found at the end of one index.
        rows = self._rows(
            f"SELECT position FROM {self.dialect.seals_table} WHERE recorded_at <= %s "
            "ORDER BY recorded_at DESC, position DESC LIMIT 1",
            (self.dialect.to_db_time(known_at),),
        )
        return int(rows[0]["position"]) if rows else 0

    def entries_for(self, originator_id: UUID, *, upto: int | None = None) -> list[LogEntry]:
        statement = self._select_entries + "WHERE s.originator_id = %s "
        params: list[Any] = [self.dialect.to_db_uuid(originator_id)]
        if upto is not None:
            statement += "AND s.position <= %s "
            params.append(upto)
        rows = self._rows(statement + "ORDER BY s.position", tuple(params))
        return [self._entry(r) for r in rows]

    def entries(self, *, after: int = 0, limit: int = 100) -> list[LogEntry]:
        """The next `limit` sealed events after a position (gaps, if the log were damaged,
        are stepped over, never mistaken for its end)."""
        d = self.dialect
        rows = self._rows(
            page_of_log(d, "s.position, s.recorded_at, s.originator_id, s.originator_version, "
                           "s.prev_hash, s.hash, s.recorded_by, e.topic, e.state", upto=False),
            (after, limit),
        )
        return [self._entry(r) for r in rows]

    def existing(self, originator_ids: set[UUID]) -> set[UUID]:
        """Which of these aggregates have events in the log, in one query. The rows name ids
        by their index in the list sent, which is cheaper to read back than a UUID."""
        ids = list(originator_ids)
        if not ids:
            return set()
        d = self.dialect
        source, params = d.id_rows(ids)
        probe = f"SELECT 1 FROM {d.seals_table} s WHERE s.originator_id = w.id"
        rows = self._tuples(
            f"SELECT w.n FROM {source} CROSS JOIN LATERAL ({probe} LIMIT 1) AS x"
            if d.lateral_probes else f"SELECT w.n FROM {source} WHERE EXISTS ({probe})", params)
        return {ids[n - 1] for (n,) in rows}

    def events_of(self, originator_ids: set[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of these aggregates, in version order, in one query, for
        loading a batch's records at once."""
        ids = list(originator_ids)
        found: dict[UUID, list[StoredEvent]] = {}
        if not ids:
            return found
        d = self.dialect
        source, params = d.id_rows(ids)
        events = (f"SELECT s.originator_id, s.originator_version, e.topic, e.state "
                  f"FROM {d.seals_table} s JOIN {d.events_table} e "
                  f"ON e.{d.events_id} = s.notification_id")
        each = (f"CROSS JOIN LATERAL ({events} WHERE s.originator_id = w.id OFFSET 0) AS x"
                if d.lateral_probes else f"JOIN ({events}) AS x ON x.originator_id = w.id")
        rows = self._tuples(
            f"SELECT w.n, x.originator_version, x.topic, x.state FROM {source} {each} "
            "ORDER BY w.n, x.originator_version", params)
        for n, version, topic, state in rows:
            originator_id = ids[n - 1]
            found.setdefault(originator_id, []).append(
                StoredEvent(originator_id, version, topic, bytes(state)))
        return found

    def entries_of_topics(self, topics: list[str], *, upto: int) -> list[LogEntry]:
        marks = ", ".join(["%s"] * len(topics))
        rows = self._rows(
            self._select_entries + f"WHERE e.topic IN ({marks}) AND s.position <= %s "
            "ORDER BY s.position",
            (*topics, upto),
        )
        return [self._entry(r) for r in rows]

    def entries_recorded_at(self, moment: datetime, *, upto: int) -> list[LogEntry]:
        """The events sealed at exactly `moment` (one commit, or commits sharing a clock
        tick), up to a position: one indexed query."""
        rows = self._rows(
            self._select_entries + "WHERE s.recorded_at = %s AND s.position <= %s "
            "ORDER BY s.position",
            (self.dialect.to_db_time(moment), upto),
        )
        return [self._entry(r) for r in rows]

    def iter_entries(self, *, after: int = 0, batch: int = 5000) -> Iterator[LogEntry]:
        while True:
            page = self.entries(after=after, limit=batch)
            yield from page
            if len(page) < batch:
                return
            after = page[-1].position

    def seal_of(self, originator_id: UUID, version: int) -> LogEntry | None:
        rows = self._rows(
            self._select_entries + "WHERE s.originator_id = %s AND s.originator_version = %s",
            (self.dialect.to_db_uuid(originator_id), version),
        )
        return self._entry(rows[0]) if rows else None

    def stored_answer(self, scope: str, key: str) -> StoredAnswer | None:
        """The answer stored under an Idempotency-Key by the sender `scope` (a key id)."""
        rows = self._rows(
            f"SELECT request_hash, status, answer FROM {self.dialect.idempotency_table} "
            "WHERE scope = %s AND key = %s",
            (scope, key),
        )
        if not rows:
            return None
        row = rows[0]
        answer = row["answer"]
        return StoredAnswer(row["request_hash"], row["status"],
                            json.loads(answer) if isinstance(answer, str) else answer)

    # API keys --------------------------------------------------------------------------------

    def add_api_key(self, key_id: str, name: str, role: str, key_hash: str) -> None:
        now = self.dialect_now()  # before the write: SQLite's pool won't lend a reader inside it
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(
                self.dialect.sql(
                    f"INSERT INTO {self.dialect.api_keys_table} "
                    "(key_id, name, role, key_hash, created_at) VALUES (%s, %s, %s, %s, %s)"
                ),
                (key_id, name, role, key_hash, self.dialect.to_db_time(now)),
            )

    def find_api_key(self, key_hash: str) -> ApiKeyRow | None:
        rows = self._rows(
            f"SELECT key_id, name, role, created_at FROM {self.dialect.api_keys_table} "
            "WHERE key_hash = %s AND revoked_at IS NULL",
            (key_hash,),
        )
        if not rows:
            return None
        r = rows[0]
        return ApiKeyRow(r["key_id"], r["name"], r["role"],
                         self.dialect.from_db_time(r["created_at"]))

    def api_keys(self) -> list[ApiKeyRow]:
        """Every key, revoked ones too, oldest first: ids, names, roles and times, never
        their hashes."""
        return [self._api_key_row(r) for r in self._rows(
            f"SELECT key_id, name, role, created_at, revoked_at FROM "
            f"{self.dialect.api_keys_table} ORDER BY created_at, key_id")]

    def revoke_api_key(self, key_id: str) -> ApiKeyRow | None:
        """Revoke a key (a revoked key keeps the time it was first revoked); the key as it
        now is, or None when there is no key with this id."""
        now = self.dialect_now()  # before the write, as in add_api_key
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"UPDATE {self.dialect.api_keys_table} SET revoked_at = %s "
                "WHERE key_id = %s AND revoked_at IS NULL"),
                (self.dialect.to_db_time(now), key_id))
        rows = self._rows(f"SELECT key_id, name, role, created_at, revoked_at FROM "
                          f"{self.dialect.api_keys_table} WHERE key_id = %s", (key_id,))
        return self._api_key_row(rows[0]) if rows else None

    def _api_key_row(self, row: Any) -> ApiKeyRow:
        revoked = row["revoked_at"]
        return ApiKeyRow(row["key_id"], row["name"], row["role"],
                         self.dialect.from_db_time(row["created_at"]),
                         self.dialect.from_db_time(revoked) if revoked is not None else None)

    def dialect_now(self) -> datetime:
        with self.dialect.transaction(commit=False) as cursor:
            return self.dialect.db_now(cursor)

    # Verification's read path ---------------------------------------------------------------

    def iter_chain_rows(
        self, *, after: int = 0, page: int = 20_000
    ) -> Generator[Iterable[ChainRow], None, None]:
        """Everything verification hashes, in position order, as plain tuples (see ChainRow), a
        page at a time: keyset pages, each its own short read, as in iter_entries. On
        PostgreSQL the next page is read while the caller hashes this one."""
        if self._on_postgres:
            return _read_ahead(self._postgres_chain_pages(after, page))
        return self._sqlite_chain_pages(after, page)

    def canonical_time(self, value: Any) -> str:
        """A recorded_at from iter_chain_rows in the text the chain hashes: what
        format_time(dialect.from_db_time(value)) would write."""
        if not self._on_postgres:
            return reformat_time(value)  # SQLite's from_db_time is parse_time
        if isinstance(value, bytes):
            value = _TIMESTAMPTZ.load(value)  # read raw: see _postgres_chain_pages
        return format_time(self.dialect.from_db_time(value))

    @cached_property
    def _on_postgres(self) -> bool:  # cached: canonical_time asks once per commit read
        return isinstance(getattr(self.dialect, "datastore", None), PostgresDatastore)

    # Replay's read path ------------------------------------------------------------------------

    def iter_states(self, *, upto: int, page: int = 20_000) -> Iterator[Iterable[StateRow]]:
        """(position, topic, state) of every sealed event up to a position, in log order, a
        page at a time: all that folding a World reads. On PostgreSQL the next page is read
        while the caller folds this one."""
        if self._on_postgres:
            return _read_ahead(self._postgres_state_pages(upto, page))
        return self._sqlite_state_pages(upto, page)

    def _postgres_state_pages(
        self, upto: int, page: int
    ) -> Generator[Iterable[StateRow], None, None]:
        """Seals by position, then their events by one range of ids, as in
        _postgres_chain_pages; read in binary, so each state arrives as the stored bytes."""
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

    def _sqlite_state_pages(self, upto: int, page: int) -> Iterator[list[StateRow]]:
        d = self.dialect
        statement = d.sql(page_of_log(d, "s.position, e.topic, e.state", upto=True))
        after = 0
        while after < upto:
            with d.transaction(commit=False) as cursor:
                if isinstance(cursor, sqlite3.Cursor):
                    cursor = cursor.connection.cursor()
                    cursor.row_factory = None  # tuples, not sqlite3.Row
                rows: list[StateRow] = cursor.execute(statement, (after, upto, page)).fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def _postgres_chain_pages(
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

    def _sqlite_chain_pages(
        self, after: int, page: int
    ) -> Generator[Iterable[ChainRow], None, None]:
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
                if isinstance(cursor, sqlite3.Cursor):
                    cursor = cursor.connection.cursor()
                    cursor.row_factory = None  # tuples, not sqlite3.Row
                rows: list[ChainRow] = [
                    ((p, t, _uuid_text(o, from_db_uuid), v, n, ph, h, by), (n, topic, state))
                    for p, t, o, v, n, ph, h, by, topic, state
                    in cursor.execute(joined, (after, page)).fetchall()
                ]
            if rows:
                yield rows
            if len(rows) < page:
                return
            after = rows[-1][0][0]


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


_HEX = "0123456789abcdef"


def _uuid_text(stored: Any, from_db_uuid: Callable[[Any], UUID]) -> str:
    """str(from_db_uuid(stored)), without building a UUID when `stored` is already what
    UUID.hex writes (32 lowercase hex digits), the only form we store."""
    if type(stored) is str and len(stored) == 32 and not stored.strip(_HEX):
        return f"{stored[:8]}-{stored[8:12]}-{stored[12:16]}-{stored[16:20]}-{stored[20:]}"
    return str(from_db_uuid(stored))
