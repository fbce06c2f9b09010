"""Reads served by PostgreSQL hot standbys (CHIPLEDGER_READ_DATABASE_URLS) when they have
replayed far enough, else by the primary.

A read of the read models is an answer at one position (infra.posture's Moment: the position
`known_at` maps to, or the read models' own on the primary, after any `min_position` wait).
The findings are bitemporal by position, so any database whose projection has reached that
position gives the same rows: a standby whose replayed tracking row is at or past it serves
the read, one that lags does not. The tracking position only grows, so the last one seen is
a safe lower bound for a second. A standby that fails, before or during a read, is left
alone for a few seconds, and the read runs on the primary.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from uuid import UUID

import structlog

from domain.evaluator import Finding, ProcessingPiece
from infra.deadlines import database_calls
from infra.dialect import Dialect
from infra.findings_store import FindingsStore
from infra.postgres.standby import replay_of
from infra.store import LogEntry, LogStore
from projections.findings import PROJECTION_NAME

log = structlog.get_logger("chipledger.replicas")

FRESH_SECONDS = 1.0  # how long a standby's position, once read, is trusted as a lower bound
DOWN_SECONDS = 5.0  # how long a standby that failed is not asked again
LAG_SECONDS = 0.5  # how long each of /readyz's questions to a standby may take
PRIMARY = "primary"

T = TypeVar("T")


@dataclass(frozen=True)
class ReadReplica:
    """A hot standby of the primary, read through the primary's dialect (infra.bootstrap
    makes them from CHIPLEDGER_READ_DATABASE_URLS)."""

    name: str  # host:port, as /readyz and /metrics name it
    dialect: Dialect
    close: Callable[[], None]


@dataclass(frozen=True)
class ReadSource:
    """Where one read runs: the log and read model of the primary or of a standby."""

    name: str
    store: LogStore
    findings: FindingsStore


class Standby:
    def __init__(self, replica: ReadReplica) -> None:
        self.replica = replica
        self.source = ReadSource(replica.name, LogStore(replica.dialect),
                                 FindingsStore(replica.dialect))
        self.known, self.known_at, self.down_until = 0, 0.0, 0.0

    def covers(self, position: int) -> bool:
        now = time.monotonic()
        if self.known >= position and now - self.known_at < FRESH_SECONDS:
            return True
        if now < self.down_until:
            return False
        try:
            self.known = self.source.findings.tracking(PROJECTION_NAME)
        except Exception as error:  # any failure: the primary answers meanwhile
            self.failed(error)
            return False
        self.known_at = now
        return self.known >= position

    def failed(self, error: Exception) -> None:
        log.warning("replica_unavailable", replica=self.source.name,
                    error=type(error).__name__)
        self.down_until, self.known_at = time.monotonic() + DOWN_SECONDS, 0.0

    def lag(self, head: int, projected: int) -> dict[str, Any]:
        """How far behind the primary (its head and projected position) this standby is;
        quickly `unavailable` when it does not answer (readiness must not wait on it)."""
        if time.monotonic() < self.down_until:
            return {"name": self.source.name, "status": "unavailable"}
        try:
            with database_calls(LAG_SECONDS):
                replica_head = self.source.store.head()
                replica_projected = self.source.findings.tracking(PROJECTION_NAME)
                replay = replay_of(self.replica.dialect)
        except Exception as error:
            self.failed(error)
            return {"name": self.source.name, "status": "unavailable",
                    "error": type(error).__name__}
        position = replica_head.position if replica_head else 0
        return {"name": self.source.name, "status": "paused" if replay.paused else "streaming",
                "head_position": position, "projected_position": replica_projected,
                "lag_events": max(0, head - position),
                "projection_lag_events": max(0, projected - replica_projected),
                "lag_seconds": round(replay.seconds, 3)}


class ReplicaSet:
    """The primary and its standbys; each read goes to the next standby that covers it."""

    def __init__(self, primary: LogStore, replicas: Sequence[ReadReplica] = ()) -> None:
        self.primary = ReadSource(PRIMARY, primary, FindingsStore(primary.dialect))
        self.standbys = [Standby(replica) for replica in replicas]
        self.served: Counter[str] = Counter()
        self.turn = 0
        self.lock = threading.Lock()

    def standby_for(self, position: int) -> Standby | None:
        """A standby that has replayed the read models to `position`, if one has."""
        count = len(self.standbys)
        with self.lock:
            start, self.turn = self.turn, self.turn + 1  # round robin over the standbys
        return next((standby for i in range(count)
                     if (standby := self.standbys[(start + i) % count]).covers(position)),
                    None)

    def run(self, position: int, read: Callable[[ReadSource], T]) -> T:
        """`read` at `position` on a standby that covers it, else on the primary; on the
        primary again when the standby fails under it (it is then left alone a while)."""
        standby = self.standby_for(position)
        if standby is not None:
            try:
                answer = read(standby.source)
            except Exception as error:
                standby.failed(error)
            else:
                self._count(standby.source.name)
                return answer
        answer = read(self.primary)
        self._count(PRIMARY)
        return answer

    def _count(self, name: str) -> None:
        with self.lock:
            self.served[name] += 1

    def lags(self, head: int, projected: int) -> list[dict[str, Any]]:
        return [standby.lag(head, projected) for standby in self.standbys]

    def close(self) -> None:
        for standby in self.standbys:
            standby.replica.close()


class RoutedLog:
    """The log as the read-side use cases read it (projections.views.LogReader): a read up
    to a position from where the ReplicaSet sends it; where the position is decided (the
    head, the position a time maps to), the primary."""

    def __init__(self, reads: ReplicaSet) -> None:
        self.reads, self.primary = reads, reads.primary.store

    def head(self) -> LogEntry | None:
        return self.primary.head()

    def position_at(self, known_at: datetime) -> int:
        return self.primary.position_at(known_at)

    def entries(self, *, after: int = 0, limit: int = 100) -> list[LogEntry]:
        return self.primary.entries(after=after, limit=limit)

    def entries_for(self, originator_id: UUID, *, upto: int | None = None) -> list[LogEntry]:
        if upto is None:
            return self.primary.entries_for(originator_id)
        return self.reads.run(upto, lambda s: s.store.entries_for(originator_id, upto=upto))

    def entries_of_topics(self, topics: list[str], *, upto: int) -> list[LogEntry]:
        return self.reads.run(upto, lambda s: s.store.entries_of_topics(topics, upto=upto))

    def entries_recorded_at(self, moment: datetime, *, upto: int) -> list[LogEntry]:
        return self.reads.run(upto, lambda s: s.store.entries_recorded_at(moment, upto=upto))


class RoutedFindings:
    """The read models as the use cases read them (projections.views.FindingsView): rows as
    of a position from where the ReplicaSet sends them; how far they have come, the
    primary's."""

    def __init__(self, reads: ReplicaSet) -> None:
        self.reads, self.primary = reads, reads.primary.findings

    def tracking(self, name: str) -> int:
        return self.primary.tracking(name)

    def findings(self, *, position: int, firm_id: str | None = None,
                 day: date | None = None) -> list[Finding]:
        return self.reads.run(position, lambda s: s.findings.findings(
            position=position, firm_id=firm_id, day=day))

    def findings_page(self, *, position: int, firm_id: str, day: date, limit: int,
                      after: tuple[str, str, str] | None) -> list[Finding]:
        return self.reads.run(position, lambda s: s.findings.findings_page(
            position=position, firm_id=firm_id, day=day, limit=limit, after=after))

    def firm_statuses(self, *, position: int, day: date) -> list[tuple[str, str]]:
        return self.reads.run(position, lambda s: s.findings.firm_statuses(
            position=position, day=day))

    def findings_of(self, *, position: int, firm_ids: list[str], day: date
                    ) -> list[Finding]:
        return self.reads.run(position, lambda s: s.findings.findings_of(
            position=position, firm_ids=firm_ids, day=day))

    def status_counts(self, *, position: int, firm_id: str, day: date) -> dict[str, int]:
        return self.reads.run(position, lambda s: s.findings.status_counts(
            position=position, firm_id=firm_id, day=day))

    def pieces(self, *, position: int, firm_id: str, day: date) -> list[ProcessingPiece]:
        return self.reads.run(position, lambda s: s.findings.pieces(
            position=position, firm_id=firm_id, day=day))

    def changes_between(self, firm_id: str, after: int, upto: int) -> list[int]:
        return self.reads.run(upto, lambda s: s.findings.changes_between(firm_id, after, upto))
