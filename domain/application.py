"""The Ledger: an eventsourcing Application with thin command methods.

A request becomes one or more `Append`s. The Ledger stages them (loads or creates the records,
checks references and preconditions, triggers the events) and commits them in one `save`, so
a batch is all or nothing. Keyword arguments given to `commit` reach the recorder, which writes
the seal and the idempotency record in the same transaction as the events.
"""

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import Recording

from domain.aggregates import AGGREGATES, Record
from domain.bodies import Body
from domain.drafts import DraftRecord, stored_events
from domain.errors import (
    FieldProblem,
    InvalidRecordError,
    RecordConflictError,
    RecordNotFoundError,
    VersionMismatchError,
)
from domain.ids import record_uuid
from domain.kinds import ALL_KINDS, Role
from domain.ownership import check_no_self_ownership
from domain.persistence import LedgerRecorder
from domain.records import LoggedEvent, RecordState


@dataclass(frozen=True)
class Append:
    """One append of api.md: a role on a record of a kind, with its validated body."""

    kind: str
    role: Role
    body: Body
    record_id: str | None = None  # None for a create: the id is in the body
    expected_version: int | None = None  # If-Match

    @cached_property
    def data(self) -> dict[str, Any]:
        """The event data of the body, dumped once (prefetch and staging both read it)."""
        return self.body.data()

    @property
    def target_id(self) -> str:
        return self.record_id if self.record_id is not None else str(vars(self.body)["id"])


@dataclass(frozen=True)
class Outcome:
    kind: str
    record_id: str
    originator_id: UUID
    version: int
    created: bool  # a new record (201), rather than an event on an existing one (200)
    appended: bool  # False when a create repeated an existing record's exact content


@dataclass
class Staged:
    records: dict[UUID, "Record | DraftRecord"] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    absent: set[UUID] = field(default_factory=set)  # known not to be in the log
    present: set[UUID] = field(default_factory=set)  # known to be in the log
    base: "Staged | None" = None  # earlier requests of the same group commit
    drafts: bool = False  # stage DraftRecords (bulk ingest) rather than aggregates

    @property
    def appended(self) -> bool:
        return any(o.appended for o in self.outcomes)

    @property
    def pending(self) -> list["Record | DraftRecord"]:
        return [r for r in self.records.values() if r.pending_events]


class Ledger(Application[UUID]):
    name = "Ledger"
    # Given by the composition root when the backend answers many aggregates in one query
    # (which are in the log, and their stored events), so a batch need not ask about or load
    # its records one by one. None: asked one by one, through the library's recorder.
    batch_reads: LedgerRecorder | None = None

    def get_record(self, kind: str, record_id: str) -> Record:
        try:
            record: Record = self.repository.get(record_uuid(kind, record_id))
        except AggregateNotFoundError:
            raise RecordNotFoundError(kind, record_id) from None
        return record

    def has_record(self, kind: str, record_id: str) -> bool:
        return bool(self.recorder.select_events(record_uuid(kind, record_id), limit=1))

    def stage(self, appends: Iterable[Append], *, base: Staged | None = None,
              drafts: bool = False) -> Staged:
        """Apply the appends to their records in memory, checking each against what came before
        it (in the log or earlier in the same batch). Raises a LedgerError on the first refusal,
        naming the batch line when there is more than one append.

        With `base` (a group commit), records already staged there are read from it, copied:
        a refused request leaves the others' staged records as they were.

        With `drafts`, records are staged as DraftRecords: the same checks, without the
        aggregate machinery, for batches ingested in bulk."""
        staged = Staged(base=base, drafts=drafts)
        appends = list(appends)
        # Each append's record id and aggregate id, worked out once for prefetch and staging
        targets = [(a.target_id, record_uuid(a.kind, a.target_id)) for a in appends]
        if base is None:
            self.prefetch(staged, appends, targets)
        else:
            staged.present, staged.absent = base.present, base.absent
        outcomes = staged.outcomes
        for line, (append, target) in enumerate(zip(appends, targets, strict=True), start=1):
            try:
                outcomes.append(self._stage_one(staged, append, *target))
            except InvalidRecordError as error:
                if len(appends) > 1:
                    error.problems = [
                        FieldProblem((line, *p.loc), p.msg, p.type) for p in error.problems
                    ]
                raise
        return staged

    def prefetch(self, staged: Staged, appends: list[Append],
                 targets: list[tuple[str, UUID]] | None = None) -> None:
        """Learn in one query which of the records the appends name are in the log."""
        if self.batch_reads is None or len(appends) < 2:
            return
        if targets is None:
            targets = [(a.target_id, record_uuid(a.kind, a.target_id)) for a in appends]
        named: dict[UUID, tuple[str, str]] = {}  # the appends' own records
        referenced: set[UUID] = set()
        for append, (record_id, originator_id) in zip(appends, targets, strict=True):
            named[originator_id] = (append.kind, record_id)
            references = ALL_KINDS[append.kind].references
            if not references:
                continue
            data = append.data
            for name, kind in references.items():
                value = data.get(name)
                if value is None:
                    continue
                referenced.update(record_uuid(kind, ref) for _, ref in _each(value))
        wanted = referenced | named.keys()
        staged.present = self.batch_reads.existing(wanted)
        staged.absent = wanted - staged.present
        loaded = (named.keys() & staged.present) - staged.records.keys()
        if staged.drafts and loaded:
            for originator_id, stored in self.batch_reads.events_of(loaded).items():
                staged.records[originator_id] = DraftRecord.load(*named[originator_id], stored)

    def commit(self, staged: Staged, **save_kwargs: Any) -> list[Recording[UUID]]:
        """Store the staged events in one transaction. Drafts go straight to the recorder in
        the form the mapper would give them (their notifications are read from the log, as
        every reader here does, not from the returned recordings)."""
        pending = staged.pending
        if not pending:
            return []
        if not staged.drafts:
            return self.save(*pending, **save_kwargs)
        drafts = [r for r in pending if isinstance(r, DraftRecord)]
        self.recorder.insert_events(stored_events(drafts), **save_kwargs)
        for draft in drafts:
            draft.pending_events.clear()
        return []

    def _stage_one(self, staged: Staged, append: Append, record_id: str,
                   originator_id: UUID) -> Outcome:
        spec = ALL_KINDS[append.kind]
        record = self._load(staged, append.kind, record_id, originator_id)
        data = append.data
        if append.role is Role.CREATE:
            if record is not None:
                return self._repeat_create(record, data)
            if spec.references:
                self._check_references(staged, spec.references, data)
            self._check_parties(staged, append.kind, data)
            record = DraftRecord.open(append.kind, record_id, data) if staged.drafts \
                else AGGREGATES[append.kind].open(record_id, data)
            staged.records[originator_id] = record
            return Outcome(append.kind, record_id, originator_id, record.version, True, True)
        if record is None:
            raise RecordNotFoundError(append.kind, record_id)
        if append.expected_version is not None and append.expected_version != record.version:
            raise VersionMismatchError(append.kind, record_id, append.expected_version,
                                       record.version)
        if spec.references:
            self._check_references(staged, spec.references, data)
        if append.kind == "firm" and data.get("parent_firm_id"):
            self._check_no_parent_cycle(staged, record_id, data["parent_firm_id"])
        if append.kind == "firm" and data.get("owners"):
            self._check_no_self_ownership(staged, record, append)
        self._check_parties(staged, append.kind, data)
        record.record(append.role, data)
        return Outcome(append.kind, record_id, originator_id, record.version, False, True)

    def _load(self, staged: Staged, kind: str, record_id: str,
              originator_id: UUID | None = None) -> "Record | DraftRecord | None":
        if originator_id is None:
            originator_id = record_uuid(kind, record_id)
        record = staged.records.get(originator_id)
        if record is not None:
            return record
        if staged.base is not None and originator_id in staged.base.records:
            record = staged.records[originator_id] = copy.deepcopy(
                staged.base.records[originator_id])
            return record
        if originator_id in staged.absent:
            return None
        if staged.drafts:
            stored = self.recorder.select_events(originator_id)
            if not stored:
                return None
            record = staged.records[originator_id] = DraftRecord.load(kind, record_id, stored)
            return record
        try:
            record = staged.records[originator_id] = self.get_record(kind, record_id)
        except RecordNotFoundError:
            return None
        return record

    @staticmethod
    def _repeat_create(record: "Record | DraftRecord", data: dict[str, Any]) -> Outcome:
        if record.state.created != data:
            raise RecordConflictError(record.state.kind, record.record_id)
        return Outcome(record.state.kind, record.record_id, record.id, 1, True, False)

    def _check_references(
        self, staged: Staged, references: dict[str, str], data: dict[str, Any]
    ) -> None:
        problems = []
        for name, kind in references.items():
            value = data.get(name)
            for where, ref in _each(value):
                if not self._exists(staged, kind, ref):
                    loc: tuple[str | int, ...] = (name, *where)
                    problems.append(FieldProblem(
                        loc, f"no {kind.replace('_', ' ')} with id {ref!r}", "unknown_reference"
                    ))
        if problems:
            raise InvalidRecordError(problems)

    def _exists(self, staged: Staged, kind: str, record_id: str) -> bool:
        originator_id = record_uuid(kind, record_id)
        if originator_id in staged.present or originator_id in staged.records:
            return True
        if staged.base is not None and originator_id in staged.base.records:
            return True
        return originator_id not in staged.absent and self.has_record(kind, record_id)

    def _check_parties(self, staged: Staged, kind: str, data: dict[str, Any]) -> None:
        """A restricted_party rule lists known firms (when enacted or amended)."""
        rule = data.get("rule") if kind == "regulation" else None
        if not rule or rule.get("kind") != "restricted_party":
            return
        try:
            self._check_references(staged, {"parties": "firm"}, rule)
        except InvalidRecordError as error:
            error.problems = [FieldProblem(("rule", *p.loc), p.msg, p.type)
                              for p in error.problems]
            raise

    def _check_no_self_ownership(self, staged: Staged, record: "Record | DraftRecord",
                                 append: Append) -> None:
        """Refuse owners that would make the firm own itself, through any firms, on any day."""
        event = LoggedEvent(ALL_KINDS["firm"].events[append.role], append.data)
        trial = _trial(record.state, event)

        def lookup(firm_id: str) -> RecordState | None:
            if firm_id == trial.record_id:
                return trial
            found = self._load(staged, "firm", firm_id)
            return found.state if found is not None else None

        check_no_self_ownership(trial, lookup)

    def _check_no_parent_cycle(self, staged: Staged, firm_id: str, parent_id: str) -> None:
        """Refuse a parent that is the firm itself or sits below it, on any date."""
        seen: set[str] = set()
        frontier = [parent_id]
        while frontier:
            current = frontier.pop()
            if current == firm_id:
                raise InvalidRecordError([FieldProblem(
                    ("parent_firm_id",), f"firm {parent_id!r} is {firm_id!r} or owned by it",
                    "parent_cycle")])
            if current in seen:
                continue
            seen.add(current)
            parent = self._load(staged, "firm", current)
            if parent is not None:
                frontier += _parents_ever(parent)


def _trial(state: RecordState, event: LoggedEvent) -> RecordState:
    trial = copy.deepcopy(state)
    trial.apply(event)
    return trial


def _each(value: Any) -> Sequence[tuple[tuple[str | int, ...], str]]:
    """The ids a reference field names, each with where it sits in the field: an id, a list
    of ids, or a list of owners ({"firm_id", "share"})."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [((), value)]
    return [((i, "firm_id"), item["firm_id"]) if isinstance(item, dict) else ((i,), item)
            for i, item in enumerate(value)]


def _parents_ever(firm: "Record | DraftRecord") -> list[str]:
    state = firm.state
    candidates = [state.original.get("parent_firm_id")]
    candidates += [c.fields.get("parent_firm_id") for c in state.changes]
    return [p for p in candidates if p]
