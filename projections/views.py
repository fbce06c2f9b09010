"""What the read-side use cases need of storage, as protocols: infra's stores implement them,
and projections never import infra (`domain <- projections <- infra <- api`)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from domain.evaluator import Finding, ProcessingPiece


@dataclass(frozen=True)
class Moment:
    """The bitemporal point a read asks about: the valid date `as_of`, as known at
    `known_at`. Decided once per request (defaults filled, in UTC) by the entry point."""

    as_of: date
    known_at: datetime


@dataclass(frozen=True)
class Reading:
    """A moment fixed to a position of the log: the last one recorded at `known_at`, or the
    read models' own position when they have not got that far yet (the answer says which)."""

    as_of: date
    known_at: datetime
    position: int


class Entry(Protocol):
    """One sealed event, as the log reads it back."""

    @property
    def position(self) -> int: ...
    @property
    def recorded_at(self) -> datetime: ...
    @property
    def type(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def record_id(self) -> str: ...
    @property
    def data(self) -> dict[str, Any]: ...


class Signer(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class SealedEntry(Entry, Protocol):
    """An event with its seal: who recorded it, its place in its record, its hash."""

    @property
    def recorded_by(self) -> Signer: ...
    @property
    def originator_version(self) -> int: ...
    @property
    def hash(self) -> str: ...
    @property
    def leaf_hash(self) -> str: ...  # hex: its leaf's hash in the log's Merkle tree


class LogReader(Protocol):
    """The sealed log, read by position and by record time."""

    def head(self) -> Entry | None: ...
    def position_at(self, known_at: datetime) -> int: ...
    def entries_for(self, originator_id: UUID, *, upto: int | None = None
                    ) -> Sequence[SealedEntry]: ...
    def entries(self, *, after: int = 0, limit: int = 100) -> Sequence[Entry]: ...
    def entries_of_topics(self, topics: list[str], *, upto: int) -> Sequence[Entry]: ...
    def entries_recorded_at(self, moment: datetime, *, upto: int) -> Sequence[Entry]: ...


class FindingsView(Protocol):
    """The bitemporal findings and processing read models, and how far they have come."""

    def tracking(self, name: str) -> int: ...
    def findings(self, *, position: int, firm_id: str | None = None,
                 day: date | None = None) -> list[Finding]: ...
    def findings_page(self, *, position: int, firm_id: str, day: date, limit: int,
                      after: tuple[str, str, str] | None) -> list[Finding]: ...
    def firm_statuses(self, *, position: int, day: date) -> list[tuple[str, str]]: ...
    def findings_of(self, *, position: int, firm_ids: list[str], day: date
                    ) -> list[Finding]: ...
    def status_counts(self, *, position: int, firm_id: str, day: date) -> dict[str, int]: ...
    def pieces(self, *, position: int, firm_id: str, day: date) -> list[ProcessingPiece]: ...
    def changes_between(self, firm_id: str, after: int, upto: int) -> list[int]: ...
