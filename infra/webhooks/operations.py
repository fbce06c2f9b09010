"""Operational messages: `endpoint.disabled` and `endpoint.circuit_opened`, delivered to the
other endpoints subscribed to them.

They announce the dispatcher's own state, not a commit of the log, so they are not fanned
out from the findings projection's messages: they are written with their deliveries in the
transaction that disables the endpoint or opens its circuit. Their seqs are negative, below
every commit's, so the fan-out (which follows seq upwards from the projection's) never sees
them, and they keep their own order (ordering key `~operations`), oldest first.
"""

import json
import random
import time
from datetime import datetime
from typing import Any

from infra.seal import format_time
from infra.store import Cursor, Dialect

ENDPOINT_DISABLED = "endpoint.disabled"
CIRCUIT_OPENED = "endpoint.circuit_opened"
OPERATIONAL_TYPES = (ENDPOINT_DISABLED, CIRCUIT_OPENED)
ORDERING_KEY = "~operations"
_BASE = -4 * 10**18  # plus microseconds since the epoch x 1000: negative until 2096


def announce(d: Dialect, cursor: Cursor, event_type: str, subject: str,
             payload: dict[str, Any], now: datetime) -> str | None:
    """Write the message and its deliveries to every other enabled endpoint subscribed to
    `event_type`; returns its id, or None when no one is subscribed."""
    cursor.execute(f"SELECT endpoint_id, event_types FROM {d.endpoints_table} WHERE enabled = 1")
    to = [r["endpoint_id"] for r in cursor.fetchall()
          if r["endpoint_id"] != subject and event_type in json.loads(r["event_types"])]
    if not to:
        return None
    micros, n = time.time_ns() // 1000, random.randrange(1000)
    seq, message_id = _BASE + micros * 1000 + n, f"op_{micros}_{n}"
    at = d.to_db_time(now)
    cursor.execute(d.sql(
        f"INSERT INTO {d.outbox_table} (message_id, position, seq, event_type, ordering_key, "
        "payload, created_at) VALUES (%s, 0, %s, %s, %s, %s, %s)"),
        (message_id, seq, event_type, ORDERING_KEY, json.dumps(payload), at))
    cursor.executemany(d.sql(
        f"INSERT INTO {d.deliveries_table} (endpoint_id, message_id, seq, ordering_key, status, "
        "attempts, next_attempt_at, created_at, updated_at) "
        "VALUES (%s, %s, %s, %s, 'pending', 0, %s, %s, %s)"),
        [(e, message_id, seq, ORDERING_KEY, at, at, at) for e in to])
    return message_id


def circuit_opened(d: Dialect, cursor: Cursor, endpoint_id: str) -> dict[str, Any]:
    """What endpoint.circuit_opened says: the endpoint, its run of failures, until when."""
    row = _endpoint(d, cursor, endpoint_id)
    return {**_base(row), "consecutive_failures": int(row["consecutive_failures"]),
            "open_until": format_time(d.from_db_time(row["open_until"]))}


def endpoint_disabled(d: Dialect, cursor: Cursor, endpoint_id: str, reason: str,
                      at: datetime) -> dict[str, Any]:
    """What endpoint.disabled says: the endpoint, why and when."""
    return {**_base(_endpoint(d, cursor, endpoint_id)), "reason": reason,
            "disabled_at": format_time(at)}


def _endpoint(d: Dialect, cursor: Cursor, endpoint_id: str) -> Any:
    cursor.execute(d.sql(f"SELECT * FROM {d.endpoints_table} WHERE endpoint_id = %s"),
                   (endpoint_id,))
    return cursor.fetchone()


def _base(row: Any) -> dict[str, Any]:
    return {"endpoint_id": row["endpoint_id"], "url": row["url"],
            "description": row["description"]}
