"""The dispatcher's rows: fan-out of the outbox into deliveries, claims on them, and the
outcomes of attempts, on either backend.

A claim is a lease (`claimed_by`, `claimed_until`) on a run of one chain: the deliveries of
one endpoint and ordering key (a firm) that are due, in seq order, starting at the chain's
head (no earlier delivery of the chain is still pending or failed). Only the holder sends
them, one after the other; another dispatcher cannot claim a later one while the head is
pending, so order per firm and endpoint holds across dispatchers. The head rows are locked
while claimed (FOR UPDATE SKIP LOCKED on PostgreSQL, the dialect says how), so competing
dispatchers split the chains between them instead of waiting on each other. A dispatcher
killed mid-run leaves leases that lapse; another then takes the chains over.
"""

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from infra.schema import DELIVERIES
from infra.store import Cursor, Dialect
from infra.webhooks.breaker import Breaker, BreakerPolicy
from infra.webhooks.operations import CIRCUIT_OPENED, announce, circuit_opened
from infra.webhooks.schedule import Claim, Outcome
from projections.outbox import first_seq_after

FANOUT = "webhooks-fanout"
CHAIN_RUN = 32  # deliveries of one chain claimed at once
CLAIMED = DELIVERIES.typed("claimed_until", "claimed_by")
KEY = DELIVERIES.typed("endpoint_id", "message_id")

Room = Callable[[str], int]  # how many more chains an endpoint may have in flight


class ClaimStore:
    def __init__(self, dialect: Dialect, name: str,
                 policy: BreakerPolicy | None = None) -> None:
        self.d, self.name = dialect, name
        self.breaker = Breaker(dialect, policy or BreakerPolicy())

    def _sql(self, statement: str) -> str:
        return self.d.sql(statement)

    # fan-out ----------------------------------------------------------------------------------

    def fan_out(self, limit: int = 1000) -> int:
        """Turn new outbox messages into deliveries for the endpoints subscribed to them."""
        d = self.d
        with d.transaction(commit=True) as cursor:
            seen, tracked = self._fanned_out(cursor)
            cursor.execute(self._sql(
                f"SELECT message_id, seq, event_type, ordering_key FROM {d.outbox_table} "
                "WHERE seq > %s ORDER BY seq LIMIT %s"), (seen, limit))
            messages = list(cursor.fetchall())
            if not messages:
                return 0
            cursor.execute(f"SELECT endpoint_id, event_types, from_position FROM "
                           f"{d.endpoints_table} WHERE enabled = 1")
            endpoints = [(e["endpoint_id"], set(json.loads(e["event_types"])),
                          first_seq_after(int(e["from_position"])))
                         for e in cursor.fetchall()]
            now = d.to_db_time(datetime.now(UTC))
            rows = [(endpoint_id, m["message_id"], m["seq"], m["ordering_key"], now, now, now)
                    for m in messages for endpoint_id, types, first in endpoints
                    if m["event_type"] in types and m["seq"] >= first]
            self.insert_deliveries(cursor, rows)
            self._track(cursor, tracked, seen, int(messages[-1]["seq"]))
        return len(messages)

    def insert_deliveries(self, cursor: Cursor, rows: list[tuple[Any, ...]]) -> None:
        """(endpoint, message, seq, ordering key, now, now, now) rows, as pending."""
        if rows:
            cursor.executemany(self._sql(
                f"INSERT INTO {self.d.deliveries_table} (endpoint_id, message_id, seq, "
                "ordering_key, status, attempts, next_attempt_at, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, 'pending', 0, %s, %s, %s) ON CONFLICT DO NOTHING"),
                rows)

    def _fanned_out(self, cursor: Cursor) -> tuple[int, bool]:
        cursor.execute(self._sql(f"SELECT position FROM {self.d.tracking_table} "
                                 "WHERE name = %s"), (FANOUT,))
        row = cursor.fetchone()
        return (int(row["position"]), True) if row else (0, False)

    def _track(self, cursor: Cursor, tracked: bool, seen: int, reached: int) -> None:
        d = self.d
        if tracked:
            cursor.execute(self._sql(f"UPDATE {d.tracking_table} SET position = %s "
                                     "WHERE name = %s AND position = %s"),
                           (reached, FANOUT, seen))
        else:
            cursor.execute(self._sql(f"INSERT INTO {d.tracking_table} (name, position) "
                                     "VALUES (%s, %s) ON CONFLICT DO NOTHING"),
                           (FANOUT, reached))

    # claims -----------------------------------------------------------------------------------

    def claim(self, room: Room, busy: Iterable[str], lease: float, limit: int = 200
              ) -> tuple[list[list[Claim]], set[str]]:
        """Runs of due chains, at most `room(endpoint)` chains an endpoint, none of the
        endpoints in `busy`, none whose circuit is open; each run claimed for `lease`
        seconds. Also the endpoints whose probe this dispatcher took: one delivery each."""
        now = datetime.now(UTC)
        with self.d.transaction(commit=True) as cursor:
            probes = self.breaker.take_probes(cursor, now)
            rows = self._heads(cursor, now, list(busy), probes, limit)
            heads = self._pick(rows, lambda e: 1 if e in probes else room(e))
            if not heads:
                return [], probes
            chains = self._runs(cursor, [h for h in heads if h.endpoint_id not in probes],
                                now) + [[h] for h in heads if h.endpoint_id in probes]
            until = self.d.to_db_time(now + timedelta(seconds=lease))
            self.d.update_many(cursor, self.d.deliveries_table, CLAIMED, KEY,
                               [(until, self.name, c.endpoint_id, c.message_id)
                                for chain in chains for c in chain])
        return chains, probes

    def _heads(self, cursor: Cursor, now: datetime, busy: list[str], probes: set[str],
               limit: int) -> list[Any]:
        d = self.d
        at = d.to_db_time(now)
        skip = f"AND d.endpoint_id NOT IN ({_marks(busy)}) " if busy else ""
        closed = (f"AND (e.circuit_state = 'closed' OR e.endpoint_id IN ({_marks(probes)})) "
                  if probes else "AND e.circuit_state = 'closed' ")
        cursor.execute(self._sql(
            f"SELECT d.endpoint_id, d.message_id, d.attempts, d.ordering_key, d.seq, e.url, "
            f"o.event_type, o.payload, o.created_at FROM {d.deliveries_table} d "
            f"JOIN {d.endpoints_table} e ON e.endpoint_id = d.endpoint_id "
            f"JOIN {d.outbox_table} o ON o.message_id = d.message_id "
            "WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= %s "
            f"AND (d.claimed_until IS NULL OR d.claimed_until < %s) AND e.enabled = 1 {skip}"
            f"{closed}"
            f"AND NOT EXISTS (SELECT 1 FROM {d.deliveries_table} p "
            "WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key "
            "AND p.seq < d.seq AND p.status IN ('pending', 'failed')) "
            f"ORDER BY d.seq LIMIT %s{d.claim_lock('d')}"), (at, at, *busy, *sorted(probes),
                                                              limit))
        return list(cursor.fetchall())

    def _pick(self, rows: list[Any], room: Room) -> list[Claim]:
        taken: dict[str, int] = {}
        picked = []
        for row in rows:
            n = taken.get(row["endpoint_id"], 0)
            if n < room(row["endpoint_id"]):
                taken[row["endpoint_id"]] = n + 1
                picked.append(self._claim(row, row["url"]))
        return picked

    def _runs(self, cursor: Cursor, heads: list[Claim], now: datetime) -> list[list[Claim]]:
        """Each head with the due, unclaimed deliveries that follow it in its chain, up to
        the first that is not (one waiting out a backoff, or another's)."""
        d = self.d
        chains = {(h.endpoint_id, h.ordering_key): [h] for h in heads}
        broken: set[tuple[str, str]] = set()
        for start in range(0, len(heads), 100):  # SQLite caps a compound SELECT at 500
            part = heads[start:start + 100]
            one = (f"SELECT * FROM (SELECT d.endpoint_id, d.message_id, d.attempts, "
                   "d.ordering_key, d.seq, d.next_attempt_at, d.claimed_until, o.event_type, "
                   f"o.payload, o.created_at FROM {d.deliveries_table} d "
                   f"JOIN {d.outbox_table} o ON o.message_id = d.message_id "
                   "WHERE d.endpoint_id = %s AND d.ordering_key = %s AND d.seq > %s "
                   "AND d.status IN ('pending', 'failed') ORDER BY d.seq LIMIT %s) AS r")
            cursor.execute(self._sql(" UNION ALL ".join(one for _ in part)),
                           [v for h in part for v in (h.endpoint_id, h.ordering_key, h.seq,
                                                      CHAIN_RUN - 1)])
            for row in sorted(cursor.fetchall(), key=lambda r: int(r["seq"])):
                key = (row["endpoint_id"], row["ordering_key"])
                if key in broken:
                    continue
                if self._free(row, now):
                    chains[key].append(self._claim(row, chains[key][0].url))
                else:
                    broken.add(key)
        return list(chains.values())

    def _free(self, row: Any, now: datetime) -> bool:
        d = self.d
        lapsed = row["claimed_until"] is None or d.from_db_time(row["claimed_until"]) < now
        return lapsed and d.from_db_time(row["next_attempt_at"]) <= now

    def _claim(self, row: Any, url: str) -> Claim:
        return Claim(row["endpoint_id"], row["message_id"], int(row["attempts"]), url,
                     row["event_type"], json.loads(row["payload"]),
                     self.d.from_db_time(row["created_at"]), row["ordering_key"],
                     int(row["seq"]))

    def renew(self, claims: list[Claim], lease: float) -> bool:
        """Extend the leases of claims about to be sent; False when any is no longer this
        dispatcher's to send (its lease lapsed and another took it, or a recovery)."""
        until = self.d.to_db_time(datetime.now(UTC) + timedelta(seconds=lease))
        d = self.d
        with d.transaction(commit=True) as cursor:
            renewed = 0
            for c in claims:
                cursor.execute(self._sql(
                    f"UPDATE {d.deliveries_table} SET claimed_until = %s WHERE endpoint_id = %s "
                    "AND message_id = %s AND claimed_by = %s AND attempts = %s "
                    "AND status IN ('pending', 'failed')"),
                    (until, c.endpoint_id, c.message_id, self.name, c.attempts))
                renewed += int(cursor.rowcount)
        return renewed == len(claims)

    def release(self, claims: list[Claim]) -> None:
        """Give back claims that will not be sent now (their chain stopped)."""
        if claims:
            with self.d.transaction(commit=True) as cursor:
                self._release(cursor, claims)

    def _release(self, cursor: Cursor, claims: list[Claim]) -> None:
        cursor.executemany(self._sql(
            f"UPDATE {self.d.deliveries_table} SET claimed_until = NULL, claimed_by = NULL "
            "WHERE endpoint_id = %s AND message_id = %s AND claimed_by = %s"),
            [(c.endpoint_id, c.message_id, self.name) for c in claims])

    def record(self, outcomes: list[Outcome], released: list[Claim]) -> list[str]:
        """Every attempt into the history, and each delivery's new state while its claim is
        still ours: a dispatcher that took a lapsed claim over (or a recovery) owns the
        outcome then; ours stays in the history. One transaction for a batch."""
        d = self.d
        with d.transaction(commit=True) as cursor:
            if outcomes:
                # A recovery starts `attempts` again from 0: number the history after the
                # attempts already recorded, or the new ones would collide and be dropped.
                cursor.executemany(self._sql(
                    f"INSERT INTO {d.attempts_table} (endpoint_id, message_id, attempt, at, "
                    "status_code, latency_ms, error) SELECT %s, %s, COALESCE(MAX(attempt), 0) "
                    f"+ 1, %s, %s, %s, %s FROM {d.attempts_table} WHERE endpoint_id = %s "
                    "AND message_id = %s ON CONFLICT DO NOTHING"),
                    [(o.claim.endpoint_id, o.claim.message_id, d.to_db_time(o.at),
                      o.status_code, o.latency_ms, o.error, o.claim.endpoint_id,
                      o.claim.message_id) for o in outcomes])
                cursor.executemany(self._sql(
                    f"UPDATE {d.deliveries_table} SET status = %s, attempts = %s, "
                    "next_attempt_at = %s, claimed_until = NULL, claimed_by = NULL, "
                    "last_status_code = %s, last_error = %s, updated_at = %s "
                    "WHERE endpoint_id = %s AND message_id = %s AND claimed_by = %s"),
                    [(o.status, o.attempt, _time(d, o.next_attempt_at), o.status_code, o.error,
                      d.to_db_time(o.at), o.claim.endpoint_id, o.claim.message_id, self.name)
                     for o in outcomes])
            opened = self._count(cursor, outcomes)
            self._release(cursor, released)
        return opened

    def _count(self, cursor: Cursor, outcomes: list[Outcome]) -> list[str]:
        """The breaker's runs, and an endpoint.circuit_opened message for each it opened."""
        now = datetime.now(UTC)
        opened = self.breaker.count(cursor, outcomes, now)
        for endpoint_id in opened:
            announce(self.d, cursor, CIRCUIT_OPENED, endpoint_id,
                     circuit_opened(self.d, cursor, endpoint_id), now)
        return opened

    def sendable(self) -> tuple[dict[str, int | None], set[str]]:
        """The enabled endpoints' rate limits, and which of them have a closed circuit."""
        with self.d.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT endpoint_id, circuit_state, max_per_second FROM "
                           f"{self.d.endpoints_table} WHERE enabled = 1")
            rows = cursor.fetchall()
        return ({r["endpoint_id"]: r["max_per_second"] for r in rows},
                {r["endpoint_id"] for r in rows if r["circuit_state"] == "closed"})


def _marks(values: Iterable[str]) -> str:
    return ", ".join("%s" for _ in values)


def _time(d: Dialect, moment: datetime | None) -> Any:
    return d.to_db_time(moment) if moment else None


def signing_secrets(d: Dialect, endpoint_ids: Iterable[str]) -> dict[str, list[str]]:
    """The secrets that sign for each endpoint now, newest first (two during a rotation)."""
    ids = sorted(set(endpoint_ids))
    if not ids:
        return {}
    found: dict[str, list[str]] = {e: [] for e in ids}
    with d.transaction(commit=False) as cursor:
        cursor.execute(d.sql(
            f"SELECT endpoint_id, secret FROM {d.secrets_table} WHERE endpoint_id IN "
            f"({', '.join('%s' for _ in ids)}) AND (expires_at IS NULL OR expires_at > %s) "
            "ORDER BY created_at DESC"), (*ids, d.to_db_time(datetime.now(UTC))))
        for row in cursor.fetchall():
            found[row["endpoint_id"]].append(row["secret"])
    return found
