"""Reads served by PostgreSQL hot standbys (CHIPLEDGER_READ_DATABASE_URLS) when they have
replayed far enough, else by the primary.

A read of the read models is an answer at one position (infra.posture's Moment: the position
`known_at` maps to, or the read models' own on the primary, after any `min_position` wait).
The findings are bitemporal by position, so any database whose projection has reached that
position gives the same rows: a standby whose replayed tracking row is at or past it serves
the read, one that lags does not. The tracking position only grows, so the last one seen is
a safe lower bound for a second; a standby that fails is left alone for a few seconds.
"""

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

import structlog

from domain.evaluator import Finding, ProcessingPiece
from infra.dialect import Dialect
from infra.findings_store import FindingsStore
from infra.postgres.standby import replay_of
from infra.store import LogEntry, LogStore
from projections.findings import PROJECTION_NAME

log = structlog.get_logger("chipledger.replicas")

FRESH_SECONDS = 1.0  # how long a standby's position, once read, is trusted as a lower bound
DOWN_SECONDS = 5.0  # how long a standby that failed is not asked again
PRIMARY = "primary"


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
            log.warning("replica_unavailable", replica=self.source.name,
                        error=type(error).__name__)
            self.down_until = now + DOWN_SECONDS
            return False
        self.known_at = now
        return self.known >= position

    def lag(self, head: int, projected: int) -> dict[str, Any]:
        """How far behind the primary (its head and projected position) this standby is."""
        try:
            replica_head = self.source.store.head()
            replica_projected = self.source.findings.tracking(PROJECTION_NAME)
            replay = replay_of(self.replica.dialect)
        except Exception as error:
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

    def source(self, position: int) -> ReadSource:
        """A standby that has replayed the read models to `position`, else the primary."""
        count = len(self.standbys)
        with self.lock:
            start, self.turn = self.turn, self.turn + 1  # round robin over the standbys
        chosen = next((standby.source for i in range(count)
                       if (standby := self.standbys[(start + i) % count]).covers(position)),
                      self.primary)
        with self.lock:
            self.served[chosen.name] += 1
        return chosen

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
        store = self.primary if upto is None else self.reads.source(upto).store
        return store.entries_for(originator_id, upto=upto)

    def entries_of_topics(self, topics: list[str], *, upto: int) -> list[LogEntry]:
        return self.reads.source(upto).store.entries_of_topics(topics, upto=upto)

    def entries_recorded_at(self, moment: datetime, *, upto: int) -> list[LogEntry]:
        return self.reads.source(upto).store.entries_recorded_at(moment, upto=upto)


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
        return self.reads.source(position).findings.findings(position=position,
                                                             firm_id=firm_id, day=day)

    def pieces(self, *, position: int, firm_id: str, day: date) -> list[ProcessingPiece]:
        return self.reads.source(position).findings.pieces(position=position,
                                                           firm_id=firm_id, day=day)

    def changes_between(self, firm_id: str, after: int, upto: int) -> list[int]:
        return self.reads.source(upto).findings.changes_between(firm_id, after, upto)
