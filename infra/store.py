"""The sealed log and the answers stored beside it, read the same way on either backend.

`LogStore` writes one SQL text for both; the `Dialect` of infra.dialect holds what differs,
and its `PageReader` streams the log for verification and replay (infra.postgres.pages,
infra.sqlite.pages). API keys have their table in infra.keys.
"""

import json
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from domain.aggregates import TOPIC_TO_TYPE
from domain.kinds import KIND_BY_EVENT_TYPE
from infra.dialect import Columns as Columns
from infra.dialect import Cursor as Cursor
from infra.dialect import Dialect as Dialect
from infra.dialect import PageReader, StateRow, read_rows
from infra.merkle.leaves import entry_leaf_hash
from infra.seal import RecordedBy
from infra.sealing import OutdatedLedgerError as OutdatedLedgerError
from infra.sealing import UnattributedEventError as UnattributedEventError
from infra.verify import ChainRow


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

    @property
    def leaf_hash(self) -> str:
        """Its leaf's hash in the Merkle tree (RFC 6962: SHA-256(0x00 || the bytes the chain
        hashes for it)), hex."""
        return entry_leaf_hash(self).hex()


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
    created_at: datetime | None = None


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
        return read_rows(self.dialect, statement, params)

    def _tuples(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Rows of index probes as tuples, in one read-only transaction."""
        with self.dialect.transaction(commit=False) as cursor:
            return self.dialect.tuples(cursor, self.dialect.sql(statement), params)

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
        rows = self._tuples(d.rows_with_match(source, probe), params)
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
        rows = self._tuples(
            f"SELECT w.n, x.originator_version, x.topic, x.state FROM "
            f"{d.rows_joined(source, events, 's.originator_id')} "
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
            f"SELECT request_hash, status, answer, created_at FROM "
            f"{self.dialect.idempotency_table} WHERE scope = %s AND key = %s",
            (scope, key),
        )
        if not rows:
            return None
        row = rows[0]
        answer = row["answer"]
        return StoredAnswer(row["request_hash"], row["status"],
                            json.loads(answer) if isinstance(answer, str) else answer,
                            self.dialect.from_db_time(row["created_at"]))

    def forget_answer(self, scope: str, key: str, created_at: datetime) -> None:
        """Drop an Idempotency-Key's expired answer (only that one: not a newer one stored
        meanwhile), so the key can be used again."""
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"DELETE FROM {self.dialect.idempotency_table} WHERE scope = %s AND key = %s "
                "AND created_at = %s"), (scope, key, self.dialect.to_db_time(created_at)))

    # Verification's and replay's read paths: pages, each backend's fastest way -------------

    def iter_chain_rows(
        self, *, after: int = 0, page: int = 20_000
    ) -> Generator[Iterable[ChainRow], None, None]:
        """Everything verification hashes, in position order, as plain tuples (see ChainRow), a
        page at a time: keyset pages, each its own short read, as in iter_entries."""
        return self._pages.chain_pages(after, page)

    def canonical_time(self, value: Any) -> str:
        """A recorded_at from iter_chain_rows in the text the chain hashes: what
        format_time(dialect.from_db_time(value)) would write."""
        return self._pages.canonical_time(value)

    def iter_states(self, *, upto: int, page: int = 20_000) -> Iterator[Iterable[StateRow]]:
        """(position, topic, state) of every sealed event up to a position, in log order, a
        page at a time: all that folding a World reads."""
        return self._pages.state_pages(upto, page)

    @cached_property
    def _pages(self) -> PageReader:
        return self.dialect.pages()
