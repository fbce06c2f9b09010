"""A circuit breaker per endpoint, shared by every dispatcher through the endpoint's row.

Closed: deliveries flow, and each timeout, connection error, 429 or 5xx lengthens the run
of failures (a success ends it). When the run reaches `failures`, the circuit opens for a
cool-down with jitter: nothing of the endpoint is claimed, so its deliveries wait instead of
spending their attempts. Once the cool-down is over one dispatcher takes the probe (the
circuit half-open: its `open_until` is then the probe's lease) and sends one delivery: a
success closes the circuit, a failure opens it again for another cool-down.
"""

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from infra.store import Cursor, Dialect
from infra.webhooks.schedule import Outcome

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int = 5  # a run this long opens the circuit
    cooldown: float = 30.0  # seconds, before jitter of +-20 %
    probe_lease: float = 60.0  # a probe not answered within this is taken by another

    def reopen_at(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.cooldown * random.uniform(0.8, 1.2))


def runs(outcomes: Iterable[Outcome]) -> dict[str, tuple[bool, int]]:
    """Per endpoint: whether a success ended the run of failures, and the failures after
    the last success, in the order the outcomes were answered."""
    found: dict[str, tuple[bool, int]] = {}
    for o in outcomes:
        reset, count = found.get(o.claim.endpoint_id, (False, 0))
        if o.status == "succeeded":
            found[o.claim.endpoint_id] = (True, 0)
        elif o.counts_against_receiver:
            found[o.claim.endpoint_id] = (reset, count + 1)
    return found


class Breaker:
    def __init__(self, dialect: Dialect, policy: BreakerPolicy) -> None:
        self.d, self.policy = dialect, policy

    def count(self, cursor: Cursor, outcomes: list[Outcome], now: datetime) -> list[str]:
        """Record the outcomes' runs; returns the endpoints whose circuit they opened."""
        d, opened = self.d, []
        for endpoint_id, (reset, failures) in runs(outcomes).items():
            if reset:
                cursor.execute(d.sql(
                    f"UPDATE {d.endpoints_table} SET consecutive_failures = %s, "
                    "circuit_state = 'closed', open_until = NULL WHERE endpoint_id = %s"),
                    (failures, endpoint_id))
            else:
                cursor.execute(d.sql(
                    f"UPDATE {d.endpoints_table} SET consecutive_failures = "
                    "consecutive_failures + %s WHERE endpoint_id = %s"), (failures, endpoint_id))
            if failures and self._trip(cursor, endpoint_id, now):
                opened.append(endpoint_id)
        return opened

    def _trip(self, cursor: Cursor, endpoint_id: str, now: datetime) -> bool:
        """Open the circuit once the run is long enough; True when it was closed (a failed
        probe opens it again, without announcing it again)."""
        d = self.d
        until = d.to_db_time(self.policy.reopen_at(now))
        cursor.execute(d.sql(
            f"UPDATE {d.endpoints_table} SET circuit_state = 'open', open_until = %s, "
            "circuit_openings = circuit_openings + 1 WHERE endpoint_id = %s "
            "AND circuit_state = 'closed' AND consecutive_failures >= %s"),
            (until, endpoint_id, self.policy.failures))
        if cursor.rowcount:
            return True
        cursor.execute(d.sql(
            f"UPDATE {d.endpoints_table} SET circuit_state = 'open', open_until = %s "
            "WHERE endpoint_id = %s AND circuit_state = 'half_open'"), (until, endpoint_id))
        return False

    def take_probes(self, cursor: Cursor, now: datetime) -> set[str]:
        """The endpoints whose cool-down is over and whose probe this dispatcher took."""
        d, at = self.d, self.d.to_db_time(now)
        cursor.execute(d.sql(
            f"SELECT endpoint_id FROM {d.endpoints_table} WHERE enabled = 1 "
            "AND circuit_state <> 'closed' AND open_until <= %s"), (at,))
        taken = set()
        lease = d.to_db_time(now + timedelta(seconds=self.policy.probe_lease))
        for row in cursor.fetchall():
            cursor.execute(d.sql(
                f"UPDATE {d.endpoints_table} SET circuit_state = 'half_open', open_until = %s "
                "WHERE endpoint_id = %s AND circuit_state <> 'closed' AND open_until <= %s"),
                (lease, row["endpoint_id"], at))
            if cursor.rowcount:
                taken.add(row["endpoint_id"])
        return taken
