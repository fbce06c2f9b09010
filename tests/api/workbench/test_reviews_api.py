"""Finding reviews over HTTP: POST /v1/reviews appends a sealed FindingReviewed event (writer,
auditor, admin), GET /v1/firms/{id}/reviews lists them, stale once a later event changed the
finding; a review never changes a verdict, and a refused one writes nothing."""

from typing import Any

import pytest

VIOLATOR = "zhiyuan-compute"  # the demo's unlicensed H20 shipment to China


def review_of(posture: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    finding = next(f for f in posture["findings"] if f["status"] == "violation")
    return {"firm_id": posture["firm_id"], "subject_type": finding["subject_type"],
            "subject_id": finding["subject_id"], "regulation_id": finding["regulation_id"],
            "decision": "remediation_planned", "reason": "licence application filed",
            "reviewed_position": posture["position"], **overrides}


def head(client, as_role) -> int:
    return int(client.get("/v1/integrity", headers=as_role("reader")).json()["head_position"])


@pytest.mark.usefixtures("demo")
class TestRecordingReviews:
    @pytest.mark.parametrize("role", ["writer", "auditor", "admin"])
    def test_a_reviewer_records_a_sealed_event_with_who_recorded_it(
            self, client, as_role, posture_of, role):
        body = review_of(posture_of(VIOLATOR, as_of="2025-06-01"))
        response = client.post("/v1/reviews", json=body, headers=as_role(role))
        assert response.status_code == 201, response.text
        answer = response.json()
        assert {"id", "version", "position", "recorded_at"} <= answer.keys()
        events = client.get("/v1/events", params={"after": answer["position"] - 1, "limit": 1},
                            headers=as_role("reader")).json()["events"]
        assert events[0]["type"] == "FindingReviewed"
        assert events[0]["kind"] == "finding_review"
        assert events[0]["recorded_by"]["role"] == role
        assert events[0]["data"]["decision"] == "remediation_planned"
        assert events[0]["data"]["reviewed_position"] == body["reviewed_position"]

    def test_a_reader_may_not_review(self, client, as_role, posture_of):
        before = head(client, as_role)
        body = review_of(posture_of(VIOLATOR, as_of="2025-06-01"))
        response = client.post("/v1/reviews", json=body, headers=as_role("reader"))
        assert response.status_code == 403
        assert head(client, as_role) == before

    @pytest.mark.parametrize(("change", "field"), [
        ({"decision": "ignored"}, "body.decision"),
        ({"reason": ""}, "body.reason"),
        ({"firm_id": "no-such-firm"}, "body.firm_id"),
        ({"regulation_id": "no-such-regulation"}, "body.regulation_id"),
        ({"subject_id": "ship-h20-2025-09"}, "body.reviewed_position"),  # not this firm's
        ({"reviewed_position": 10**9}, "body.reviewed_position"),
        ({"reviewed_position": 0}, "body.reviewed_position"),
        ({"reviewed_position": "12"}, "body.reviewed_position"),
    ])
    def test_a_bad_review_is_a_422_naming_the_field_and_writes_nothing(
            self, client, as_role, posture_of, change, field):
        before = head(client, as_role)
        body = review_of(posture_of(VIOLATOR, as_of="2025-06-01"), **change)
        response = client.post("/v1/reviews", json=body, headers=as_role("writer"))
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert field in {e["field"] for e in response.json()["errors"]}, response.json()
        assert head(client, as_role) == before

    def test_a_finding_not_yet_known_at_the_reviewed_position_is_refused(
            self, client, as_role, posture_of):
        body = review_of(posture_of(VIOLATOR, as_of="2025-06-01"), reviewed_position=1)
        response = client.post("/v1/reviews", json=body, headers=as_role("writer"))
        assert response.status_code == 422
        assert response.json()["errors"][0]["type"] == "unknown_finding"


@pytest.mark.usefixtures("demo")
class TestListingReviews:
    def test_reviews_are_listed_fresh_then_stale_after_a_restatement(
            self, client, as_role, posture_of):
        posture = posture_of(VIOLATOR, as_of="2025-06-01")
        body = review_of(posture)
        recorded = client.post("/v1/reviews", json=body, headers=as_role("writer")).json()
        listed = client.get(f"/v1/firms/{VIOLATOR}/reviews", params={},
                            headers=as_role("reader"))
        assert listed.status_code == 200
        (review,) = listed.json()["reviews"]
        assert review["stale"] is False
        assert review["position"] == recorded["position"]
        assert review["recorded_by"]["role"] == "writer"
        assert {k: review[k] for k in body} == body
        # A correction of the shipment changes the finding: the review is now stale
        fixed = client.post(f"/v1/shipments/{body['subject_id']}/corrections",
                            json={"quantity": 650, "reason": "customs count"},
                            headers=as_role("writer"))
        assert fixed.status_code == 200, fixed.text
        posture_of(VIOLATOR, min_position=str(fixed.json()["position"]))
        (review,) = client.get(f"/v1/firms/{VIOLATOR}/reviews",
                               headers=as_role("reader")).json()["reviews"]
        assert review["stale"] is True

    def test_a_review_never_changes_a_verdict(self, client, as_role, posture_of):
        before = posture_of(VIOLATOR, as_of="2025-06-01")
        recorded = client.post("/v1/reviews", json=review_of(before, decision="false_positive"),
                               headers=as_role("admin")).json()
        after = posture_of(VIOLATOR, as_of="2025-06-01", min_position=str(recorded["position"]))
        assert after["position"] == recorded["position"]
        assert (after["status"], after["findings"]) == (before["status"], before["findings"])
        replay = client.post("/v1/replays", json={"as_of": "2025-06-01"},
                             headers=as_role("auditor")).json()
        assert replay["consistent_with_projections"] is True

    def test_an_unknown_firm_is_a_404(self, client, as_role):
        assert client.get("/v1/firms/nobody/reviews", headers=as_role("reader")
                          ).status_code == 404

    def test_reviews_are_exported_and_verify(self, client, as_role, posture_of):
        client.post("/v1/reviews", json=review_of(posture_of(VIOLATOR, as_of="2025-06-01")),
                    headers=as_role("writer"))
        exported = client.get("/v1/exports", headers=as_role("auditor")).text
        assert '"type":"FindingReviewed"' in exported
        verified = client.post("/v1/integrity/verification", headers=as_role("auditor"))
        assert verified.json()["ok"] is True
