"""What the workbench's pages say on the demo story, read as HTML through the real app: stale
reviews send a finding back to the worklist, the regulations page marks a rule that never bound,
a what-if shows its change, records and events show who recorded them, CSV cells stay text."""

import json
import re
from datetime import date

import pytest

from api.workbench.firm import findings_csv
from domain.evaluator import Finding
from domain.types import Status
from tests.api.workbench.conftest import csrf_of
from tests.api.workbench.test_reviews_api import VIOLATOR, review_of

with_demo = pytest.mark.usefixtures("demo")


def worklist_row(html: str, firm_id: str) -> str:
    found = re.search(rf'<tr data-firm="{firm_id}".*?</tr>', html, re.S)
    assert found, firm_id
    return found.group(0)


def unreviewed(html: str, firm_id: str) -> int:
    found = re.search(r'data-unreviewed="(\d+)"', worklist_row(html, firm_id))
    assert found
    return int(found.group(1))


@with_demo
def test_a_stale_review_sends_its_finding_back_to_the_worklist(signed_in, client, as_role,
                                                                posture_of):
    page = signed_in("writer")
    assert unreviewed(page.get("/ui/").text, VIOLATOR) == 1
    body = review_of(posture_of(VIOLATOR, as_of="2025-06-01"))
    recorded = client.post("/v1/reviews", json=body, headers=as_role("writer")).json()
    posture_of(VIOLATOR, min_position=str(recorded["position"]))
    assert unreviewed(page.get("/ui/").text, VIOLATOR) == 0
    firm = page.get(f"/ui/firms/{VIOLATOR}", params={"as_of": "2025-06-01"}).text
    assert 'data-review="remediation_planned"' in firm
    fixed = client.post(f"/v1/shipments/{body['subject_id']}/corrections",
                        json={"quantity": 650, "reason": "customs count"},
                        headers=as_role("writer")).json()
    posture_of(VIOLATOR, min_position=str(fixed["position"]))
    assert unreviewed(page.get("/ui/").text, VIOLATOR) == 1
    firm = page.get(f"/ui/firms/{VIOLATOR}", params={"as_of": "2025-06-01"}).text
    assert 'data-review="stale"' in firm
    assert "data-stale" in firm


@with_demo
def test_the_review_form_records_a_review_and_refuses_a_bad_one(signed_in, client, as_role):
    page = signed_in("auditor")
    html = page.get(f"/ui/firms/{VIOLATOR}", params={"as_of": "2025-06-01"}).text
    finding = re.search(r'data-finding="([^"]+)" data-status="violation"', html)
    assert finding
    subject_type, subject_id, regulation_id = finding.group(1).split("/")
    position = re.search(r'name="reviewed_position" value="(\d+)"', html)
    assert position
    form = {"csrf": csrf_of(html), "subject_type": subject_type, "subject_id": subject_id,
            "regulation_id": regulation_id, "reviewed_position": position.group(1),
            "decision": "accepted_risk", "reason": "board decision 2025-14",
            "as_of": "2025-06-01", "row": "1\r\nSet-Cookie: planted=1"}
    bad = page.post(f"/ui/firms/{VIOLATOR}/reviews", data={**form, "decision": "shrug"},
                    follow_redirects=False)
    assert bad.status_code == 422
    response = page.post(f"/ui/firms/{VIOLATOR}/reviews", data=form, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == f"/ui/firms/{VIOLATOR}?as_of=2025-06-01"
    assert "planted" not in response.headers.get("set-cookie", "")
    (review,) = client.get(f"/v1/firms/{VIOLATOR}/reviews",
                           headers=as_role("reader")).json()["reviews"]
    assert (review["decision"], review["recorded_by"]["role"]) == ("accepted_risk", "auditor")


@with_demo
def test_the_regulations_page_marks_the_rule_that_never_bound(signed_in):
    html = signed_in("reader").get("/ui/regulations", params={"as_of": "2025-06-01"}).text
    diffusion = re.search(r'data-regulation="us-bis-ai-diffusion-2025".*?</section>', html, re.S)
    assert diffusion
    assert 'data-in-force="no"' in diffusion.group(0)
    assert "data-never-in-force" in diffusion.group(0)
    h20 = re.search(r'data-regulation="us-bis-h20-2025"[^>]*>', html)
    assert h20
    assert 'data-in-force="yes"' in h20.group(0)


@with_demo
def test_a_what_if_shows_the_finding_by_finding_change(signed_in):
    page = signed_in("auditor")
    html = page.get("/ui/audit").text
    line = json.dumps({"type": "shipments", "body": {
        "id": "what-if-h100", "chip_model": "nvidia-h100", "quantity": 64, "exporter": "NVIDIA",
        "from_country": "US", "to_country": "CN", "consignee_firm_id": "alibaba",
        "shipped_on": "2025-09-02"}})
    answer = page.post("/ui/audit", data={"csrf": csrf_of(html), "as_of": "2025-09-02",
                                          "firm_ids": "alibaba", "hypothetical": line})
    assert answer.status_code == 200, answer.text
    assert "data-what-if" in answer.text
    assert "what-if-h100" in answer.text
    bad = page.post("/ui/audit", data={"csrf": csrf_of(html), "hypothetical": "{not json"})
    assert bad.status_code == 422
    assert 'role="alert"' in bad.text


@with_demo
def test_records_and_events_show_who_recorded_them(signed_in, client, as_role):
    page = signed_in("reader")
    record = page.get("/ui/records/lease/bytedance-tuas-h100").text
    assert "DueDiligenceRecorded" in record
    assert "data-history" in record
    (event,) = client.get("/v1/events", params={"after": 0, "limit": 1},
                          headers=as_role("reader")).json()["events"]
    shown = page.get("/ui/events/1").text
    assert event["hash"] in shown
    assert event["recorded_by"]["name"] in shown
    assert page.get("/ui/events/100000").status_code == 404
    assert page.get("/ui/records/lease/nope").status_code == 404
    assert page.get("/ui/records/nonsense/x").status_code == 404


def test_csv_cells_that_a_spreadsheet_would_run_stay_text():
    finding = Finding("f", "lease", "l-1", "r", date(2025, 1, 1), None, Status.VIOLATION,
                      "=HYPERLINK(\"http://x\")", "+1 explanation", (3, 4))
    text = findings_csv([finding])
    assert "'=HYPERLINK" in text
    assert "'+1 explanation" in text

