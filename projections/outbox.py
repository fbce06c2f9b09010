"""What the findings projection announces: posture.changed, residency.changed and
ledger.appended messages, computed from a commit's before and after. Pure: the runner writes
them in the same transaction as the findings they announce.

A posture change is *new* when it concerns dates from the commit's record date on, and a
*restatement* when something recorded now changes the answer for a date before it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from domain.dates import day_after
from domain.evaluator import Finding, ProcessingPiece, StatusChange, status_changes, timeline
from domain.types import Status

POSTURE_CHANGED = "posture.changed"
RESIDENCY_CHANGED = "residency.changed"
LEDGER_APPENDED = "ledger.appended"
EVENT_TYPES = (POSTURE_CHANGED, RESIDENCY_CHANGED, LEDGER_APPENDED)
LEDGER_ORDERING_KEY = "~ledger"  # ledger.appended messages keep their own order
MAX_EVENTS_LISTED = 100
# A message's seq is position * SEQ_PER_POSITION + its number within the commit: a total order
# that fan-out can track. No commit announces anywhere near this many messages.
SEQ_PER_POSITION = 10_000_000


def first_seq_after(position: int) -> int:
    """The smallest seq a message of a later commit can have."""
    return (position + 1) * SEQ_PER_POSITION


@dataclass(frozen=True)
class Message:
    message_id: str
    event_type: str
    ordering_key: str  # a firm's messages are delivered in order
    position: int
    seq: int  # total order of messages: position, then order within the commit
    payload: dict[str, Any]


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _span(changed: Iterable[Finding], recorded: date) -> tuple[date, date]:
    days = {recorded}
    for f in changed:
        days.add(f.valid_from)
        if f.valid_to is not None:
            days.add(f.valid_to)
    # Saturates at date.max: a change that begins on the calendar's very last day falls
    # outside the span and goes unannounced, where adding a day would stop the projection.
    return min(days), day_after(max(days))


def _split_at(change: StatusChange, recorded: date) -> list[tuple[StatusChange, bool]]:
    start, end, before, after = change
    if start < recorded < end:
        return [((start, recorded, before, after), True), ((recorded, end, before, after), False)]
    return [(change, start < recorded)]


Change = tuple[date, date | None, Status, Status, bool]  # from, until, before, after, restated


def firm_changes(firm_id: str, before: set[Finding], after: set[Finding], recorded: date,
                 only: str | None = None) -> list[Change]:
    """The firm's status changes between two states of its findings, each marked as a
    restatement or not. `only` narrows to one subject type (residency)."""
    if only is not None:
        before = {f for f in before if f.subject_type == only}
        after = {f for f in after if f.subject_type == only}
    changed = before ^ after
    if not changed:
        return []
    start, end = _span(changed, recorded)
    open_ended = any(f.valid_to is None for f in changed)
    old = timeline(firm_id, before, start, end)
    new = timeline(firm_id, after, start, end)
    found: list[Change] = []
    for change in status_changes(old, new):
        for (a, b, old_status, new_status), restated in _split_at(change, recorded):
            until = None if open_ended and b == end else b
            found.append((a, until, old_status, new_status, restated))
    return found


def announce(
    position: int,
    recorded_at: datetime,
    events: list[dict[str, Any]],
    findings_before: dict[str, set[Finding]],
    findings_after: dict[str, set[Finding]],
    pieces_changed: dict[str, list[tuple[ProcessingPiece, bool]]],
) -> list[Message]:
    """Every message one commit announces, in a stable order."""
    recorded = recorded_at.date()
    messages: list[Message] = []

    def add(event_type: str, key: str, payload: dict[str, Any]) -> None:
        n = len(messages) + 1
        if n >= SEQ_PER_POSITION:
            raise OverflowError(f"commit {position} announces {n} messages")
        messages.append(Message(f"msg_{position}_{n}", event_type, key, position,
                                position * SEQ_PER_POSITION + n, payload))

    for firm in sorted(findings_before.keys() | findings_after.keys() | pieces_changed.keys()):
        before, after = findings_before.get(firm, set()), findings_after.get(firm, set())
        for start, end, old, new, restatement in firm_changes(firm, before, after, recorded):
            add(POSTURE_CHANGED, firm, _status_payload(firm, start, end, old, new, restatement,
                                                       recorded_at, position))
        residency = firm_changes(firm, before, after, recorded, only="processing_activity")
        for start, end, old, new, restatement in residency:
            add(RESIDENCY_CHANGED, firm, _status_payload(firm, start, end, old, new,
                                                         restatement, recorded_at, position))
        if not residency and pieces_changed.get(firm):
            for piece, opened in pieces_changed[firm]:
                if not opened:
                    continue
                status = _residency_status(after, piece.valid_from)
                add(RESIDENCY_CHANGED, firm, {
                    **_status_payload(firm, piece.valid_from, piece.valid_to, status, status,
                                      piece.valid_from < recorded, recorded_at, position),
                    "processing": {"activity_id": piece.activity_id,
                                   "data_subject_country": piece.data_subject_country,
                                   "processed_in": piece.processed_in}})
    add(LEDGER_APPENDED, LEDGER_ORDERING_KEY, {
        "first_position": events[0]["position"], "last_position": position,
        "count": len(events), "recorded_at": _iso(recorded_at),
        "events": events[:MAX_EVENTS_LISTED]})
    return messages


def _residency_status(findings: set[Finding], day: date) -> Status:
    statuses = [f.status for f in findings
                if f.subject_type == "processing_activity" and f.holds_on(day)]
    return max(statuses, key=lambda s: s.rank, default=Status.COMPLIANT)


def _status_payload(firm: str, start: date, end: date | None, old: Status, new: Status,
                    restatement: bool, recorded_at: datetime, position: int) -> dict[str, Any]:
    return {"firm_id": firm, "as_of": start.isoformat(),
            "as_of_until": end.isoformat() if end else None,
            "previous_status": old.value, "status": new.value, "restatement": restatement,
            "known_at": _iso(recorded_at), "position": position}
