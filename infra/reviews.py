"""Finding reviews: a reviewer's decision on a finding, recorded as a `FindingReviewed` event.

A review names the finding (firm, subject, regulation) and the position of the posture answer
the reviewer looked at. It is stale once a later event changed that finding: the finding's rows
as known at the reviewed position differ from its rows as known now. A review never changes a
verdict; the evaluator never reads it.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from domain.aggregates import TYPE_TO_TOPIC
from domain.application import Append
from domain.bodies import FindingReview, ReviewDecision
from domain.errors import FieldProblem, InvalidRecordError
from domain.evaluator import Finding
from domain.kinds import Role
from infra.bootstrap import Container
from infra.keys import Permission, Principal
from infra.posture import PostureService, ProjectionBehindError, posture_service
from infra.seal import RecordedBy
from infra.service import Answer, AppendService

FindingKey = tuple[str, str, str]  # (subject_type, subject_id, regulation_id)
REVIEWED_TOPIC = TYPE_TO_TOPIC["FindingReviewed"]
DECISIONS: tuple[str, ...] = get_args(ReviewDecision.model_fields["decision"].annotation)


@dataclass(frozen=True)
class Review:
    review_id: str
    firm_id: str
    key: FindingKey
    decision: str
    reason: str
    reviewed_position: int
    position: int
    recorded_at: datetime
    recorded_by: RecordedBy
    stale: bool


class ReviewService:
    def __init__(self, container: Container, posture: PostureService | None = None) -> None:
        self.store = container.store
        self.appends = AppendService(container)
        self.posture = posture or posture_service(container)

    def record(self, decision: ReviewDecision, *, recorded_by: RecordedBy) -> Answer:
        """Append a review after checking that its finding was in the answer it names."""
        body = FindingReview(id=f"rv-{uuid.uuid4().hex[:16]}", **dict(decision))
        self._check_reviewed(body)
        return self.appends.append([Append("finding_review", Role.CREATE, body)],
                                   recorded_by=recorded_by)

    def _check_reviewed(self, body: FindingReview) -> None:
        head = self.posture.head_position()
        if body.reviewed_position > head:
            raise _refused(f"reviewed_position {body.reviewed_position} is beyond the head "
                           f"of the log, at position {head}", "beyond_head")
        reached = self.posture.projected()
        if reached < body.reviewed_position:
            raise ProjectionBehindError(body.reviewed_position, reached)
        key = (body.subject_type, body.subject_id, body.regulation_id)
        if not self.finding_rows(body.firm_id, key, body.reviewed_position):
            self._check_references(body)
            raise _refused(f"firm {body.firm_id} has no finding of {key[0]} {key[1]} under "
                           f"{key[2]} as known at position {body.reviewed_position}",
                           "unknown_finding")

    def _check_references(self, body: FindingReview) -> None:
        """An unknown firm or regulation is named as such, before the finding is."""
        ledger = self.appends.ledger
        problems = [FieldProblem((name,), f"no {kind} with id {value!r}", "unknown_reference")
                    for name, kind, value in (("firm_id", "firm", body.firm_id),
                                              ("regulation_id", "regulation", body.regulation_id))
                    if not ledger.has_record(kind, value)]
        if problems:
            raise InvalidRecordError(problems)

    def finding_rows(self, firm_id: str, key: FindingKey, position: int) -> frozenset[Finding]:
        rows = self.posture.findings.findings(position=position, firm_id=firm_id)
        return frozenset(f for f in rows if f.key == key)

    def reviews_of(self, firm_id: str, *, upto: int | None = None) -> list[Review]:
        """The firm's reviews recorded up to `upto` (default: the head of the log), each stale
        when its finding changed after the position it reviewed (as far as the read model
        has got)."""
        upto = self.posture.head_position() if upto is None else upto
        position = min(upto, self.posture.projected())
        found = []
        for entry in self.store.entries_of_topics([REVIEWED_TOPIC], upto=upto):
            data = entry.data
            if data["firm_id"] != firm_id:
                continue
            key = (data["subject_type"], data["subject_id"], data["regulation_id"])
            stale = self.finding_rows(firm_id, key, data["reviewed_position"]) != \
                self.finding_rows(firm_id, key, position)
            found.append(Review(entry.record_id, firm_id, key, data["decision"], data["reason"],
                                data["reviewed_position"], entry.position, entry.recorded_at,
                                entry.recorded_by, stale))
        return found

    def latest_by_finding(self, firm_id: str, upto: int | None = None
                          ) -> dict[FindingKey, Review]:
        """Each reviewed finding's latest review."""
        return {r.key: r for r in self.reviews_of(firm_id, upto=upto)}


def _refused(msg: str, kind: str) -> InvalidRecordError:
    return InvalidRecordError([FieldProblem(("reviewed_position",), msg, kind)])


def may_review(principal: Principal) -> bool:
    """Writers, auditors and admins record reviews; readers only read them."""
    return principal.may(Permission.REVIEW)
