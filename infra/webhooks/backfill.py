"""Backfill: deliver to one endpoint, again and in order, the messages recorded after a
position (its posture and residency transitions and ledger.appended messages, as it
subscribes).

Each message after the position gets a delivery of the endpoint's (a missing one is added,
one already through is queued again from its first attempt), and the endpoint's
`from_position` moves back so that messages the projection has yet to write are fanned out
to it too. The same insert runs again once that is committed: a message fanned out while the
first transaction was open (without the endpoint's new from_position) was already in the
outbox, so the second finds it. The deliveries keep their messages' seqs: each chain (a
firm, the ledger's own) starts again from the oldest, in order, and only the endpoint's own
slots are spent on it. Messages already in flight at that moment may arrive before it.
"""

import json
from datetime import UTC, datetime

from infra.store import Cursor, Dialect
from projections.outbox import first_seq_after


def backfill(d: Dialect, endpoint_id: str, since_position: int) -> int:
    """Queue the history after `since_position` for the endpoint; returns how many
    deliveries that is."""
    first = first_seq_after(since_position)
    with d.transaction(commit=True) as cursor:
        cursor.execute(d.sql(
            f"UPDATE {d.endpoints_table} SET from_position = %s WHERE endpoint_id = %s "
            "AND from_position > %s"), (since_position, endpoint_id, since_position))
        _insert(d, cursor, endpoint_id, first)
        now = d.to_db_time(datetime.now(UTC))
        cursor.execute(d.sql(
            f"UPDATE {d.deliveries_table} SET status = 'pending', attempts = 0, "
            "next_attempt_at = %s, claimed_until = NULL, claimed_by = NULL, updated_at = %s "
            "WHERE endpoint_id = %s AND seq >= %s AND status <> 'pending'"),
            (now, now, endpoint_id, first))
    with d.transaction(commit=True) as cursor:
        _insert(d, cursor, endpoint_id, first)
        cursor.execute(d.sql(f"SELECT count(*) AS n FROM {d.deliveries_table} "
                             "WHERE endpoint_id = %s AND seq >= %s AND status = 'pending'"),
                       (endpoint_id, first))
        return int(cursor.fetchone()["n"])


def _insert(d: Dialect, cursor: Cursor, endpoint_id: str, first: int) -> None:
    cursor.execute(d.sql(f"SELECT event_types FROM {d.endpoints_table} WHERE endpoint_id = %s"),
                   (endpoint_id,))
    types = sorted(json.loads(cursor.fetchone()["event_types"]))
    now = d.to_db_time(datetime.now(UTC))
    cursor.execute(d.sql(
        f"INSERT INTO {d.deliveries_table} (endpoint_id, message_id, seq, ordering_key, "
        "status, attempts, next_attempt_at, created_at, updated_at) "
        "SELECT %s, message_id, seq, ordering_key, 'pending', 0, %s, %s, %s "
        f"FROM {d.outbox_table} WHERE seq >= %s AND event_type IN "
        f"({', '.join('%s' for _ in types)}) ON CONFLICT DO NOTHING"),
        (endpoint_id, now, now, now, first, *types))
