"""Sealing a commit in its transaction: each event chained to the last seal, who recorded it
said, and what goes with the commit (side tables, stored answers) written beside it.

Called by both backends' recorders while they hold the writer's lock, so positions and
hashes follow commit order.
"""

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from infra.dialect import Cursor, Dialect
from infra.seal import RecordedBy, Seal, Sealable, Submission, seal_batch


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
