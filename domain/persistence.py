"""What the Ledger asks of persistence beyond the library's abstract recorder.

The library's `ApplicationRecorder` (eventsourcing.persistence) answers one aggregate at a time,
and the Ledger uses it for that: `select_events` for one record, `insert_events` for drafts.
Staging a batch asks about many records at once, so a backend that can answer many in one query
gives the Ledger a `LedgerRecorder` (the composition root, infra/bootstrap.py, hands it over).
Without one, as on the library's in-memory backend, the Ledger asks record by record.
"""

from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import StoredEvent


class LedgerRecorder(Protocol):
    def existing(self, originator_ids: set[UUID]) -> set[UUID]:
        """Which of these aggregates have events in the log, in one query."""
        ...

    def events_of(self, originator_ids: set[UUID]) -> dict[UUID, list[StoredEvent]]:
        """The stored events of these aggregates, in version order, in one query."""
        ...
