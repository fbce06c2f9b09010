"""The workbench in real headless Chromium, on the demo story, on both backends: signing in,
the worklist, a firm page that agrees with the API, the known-at slider, evidence, escaping,
a clean console, roles, and a review recorded from the page."""

import os
from pathlib import Path

import pytest

from infra.keys import Role

pytestmark = pytest.mark.slow
VIOLATOR = "zhiyuan-compute"
LATE = "bytedance-sg"  # attention on 2025-07-01 until its due diligence was recorded late


def firm_url(workbench, firm_id: str, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{workbench.base}/ui/firms/{firm_id}" + (f"?{params}" if params else "")


def shown_findings(page) -> list[tuple[str, str]]:
    rows = page.query_selector_all("tr[data-finding]")
    return sorted((r.get_attribute("data-finding"), r.get_attribute("data-status")) for r in rows)


def api_findings(posture) -> list[tuple[str, str]]:
    return sorted((f"{f['subject_type']}/{f['subject_id']}/{f['regulation_id']}", f["status"])
                  for f in posture["findings"])


def test_signing_in_opens_the_worklist(open_page):
    page, _ = open_page(Role.READER)
    assert page.inner_text("h1") == "Worklist"
    assert page.inner_text(".who").startswith("reader officer")
    page.click("form.signout button")
    page.wait_for_url("**/ui/login")
    page.goto(page.url.replace("/ui/login", "/ui/"))
    assert page.url.endswith("/ui/login")  # the session is gone


def test_the_worklist_lists_the_violating_firms_first(open_page, workbench):
    page, _ = open_page(Role.READER)
    statuses = [r.get_attribute("data-status") for r in page.query_selector_all("tr[data-firm]")]
    firms = [r.get_attribute("data-firm") for r in page.query_selector_all("tr[data-firm]")]
    violating = {f["firm_id"] for f in workbench.get("/v1/posture", status="violation")["firms"]}
    assert violating, "the demo has violating firms today"
    assert set(firms[:len(violating)]) == violating
    assert set(statuses[:len(violating)]) == {"violation"}
    assert "violation" not in statuses[len(violating):]
    page.fill("input[name=q]", "lingxi")
    with page.expect_navigation():
        page.click("form.moment button")
    assert [r.get_attribute("data-firm") for r in page.query_selector_all("tr[data-firm]")] \
        == ["lingxi-trading"]


def test_a_firm_page_shows_what_the_posture_api_answers(open_page, workbench):
    page, _ = open_page(Role.READER)
    known_at = workbench.get("/v1/integrity")["head_recorded_at"]
    for as_of in ("2025-06-01", "2025-09-15"):
        page.goto(firm_url(workbench, VIOLATOR, as_of=as_of, known_at=known_at))
        answer = workbench.get(f"/v1/firms/{VIOLATOR}/posture", as_of=as_of, known_at=known_at)
        assert page.get_attribute("[data-firm-status]", "data-status") == answer["status"]
        assert shown_findings(page) == api_findings(answer)
        assert page.inner_text("[data-position]") == str(answer["position"])
    bands = page.query_selector_all("svg[data-timeline] rect.band")
    intervals = workbench.get(f"/v1/firms/{VIOLATOR}/timeline")["intervals"]
    assert [b.get_attribute("data-status") for b in bands] == [i["status"] for i in intervals]


def test_moving_the_slider_before_the_late_record_shows_the_earlier_answer(
        open_page, workbench):
    page, _ = open_page(Role.READER)
    page.goto(firm_url(workbench, LATE, as_of="2025-07-01"))
    assert page.get_attribute("[data-firm-status]", "data-status") == "compliant"
    steps = page.query_selector_all("[data-steps] a[data-step]")
    assert len(steps) >= 2
    earlier = steps[-2]
    position = earlier.get_attribute("data-step-position")
    slider = page.locator("[data-known-at-slider]")
    slider.fill(str(len(steps) - 2))  # sets the value and fires input and change
    page.wait_for_url("**known_at=**")
    assert page.get_attribute("[data-firm-status]", "data-status") == "attention"
    assert page.inner_text("[data-position]") == position
    known_at = page.input_value("input[name=known_at]")
    answer = workbench.get(f"/v1/firms/{LATE}/posture", as_of="2025-07-01", known_at=known_at)
    assert answer["status"] == "attention"
    assert shown_findings(page) == api_findings(answer)
    # each step is a plain link too: the latest one shows today's answer again
    with page.expect_navigation():
        page.click("[data-steps] a[data-step] >> nth=-1")
    assert page.get_attribute("[data-firm-status]", "data-status") == "compliant"


def test_an_evidence_link_opens_the_event_with_its_hash(open_page, workbench):
    page, _ = open_page(Role.READER)
    page.goto(firm_url(workbench, VIOLATOR, as_of="2025-06-01"))
    link = page.locator("a[data-evidence]").first
    position = int(link.inner_text().lstrip("#"))
    link.click()
    page.wait_for_url(f"**/ui/events/{position}")
    (event,) = workbench.get("/v1/events", after=position - 1, limit=1)["events"]
    assert page.inner_text("[data-hash]") == event["hash"]
    assert len(page.inner_text("[data-prev-hash]")) == 64
    page.click("a[data-record]")
    page.wait_for_url(f"**/ui/records/{event['kind']}/{event['record_id']}")
    assert page.query_selector(f"tr[data-position='{position}']") is not None


def test_a_hostile_firm_name_is_text_and_opens_no_dialog(open_page, workbench):
    name = "<img src=x onerror=alert(1)>"
    created = workbench.api.post("/v1/firms", json={"id": "hostile", "name": name,
                                                    "hq_country": "CN"},
                                 headers={"Authorization": f"Bearer {workbench.keys[Role.WRITER]}"})
    assert created.status_code == 201, created.text
    page, watch = open_page(Role.READER)
    workbench.get("/v1/firms/hostile/posture", min_position=str(created.json()["position"]))
    page.goto(workbench.base + "/ui/?q=hostile")
    assert page.inner_text("tr[data-firm='hostile'] a") == name
    page.goto(firm_url(workbench, "hostile"))
    assert page.inner_text("[data-firm-name]") == name
    assert page.query_selector("main img") is None
    assert watch.dialogs == []


def test_the_pages_log_no_error_and_ask_nothing_of_another_server(open_page, workbench):
    page, watch = open_page(Role.ADMIN)
    for path in ("/ui/", f"/ui/firms/{VIOLATOR}?as_of=2025-06-01", f"/ui/firms/{LATE}",
                 "/ui/records/lease/bytedance-tuas-h100", "/ui/events/1", "/ui/regulations",
                 "/ui/audit", "/ui/integrity", "/ui/webhooks"):
        response = page.goto(workbench.base + path)
        assert response.status == 200, path
    page.goto(workbench.base + "/ui/audit")
    page.fill("input[name=as_of]", "2025-06-01")
    with page.expect_navigation():
        page.click("[data-replay-form] button")
    assert page.get_attribute("[data-consistent]", "data-consistent") == "true"
    page.goto(workbench.base + "/ui/integrity")
    with page.expect_navigation():
        page.click("[data-verify-form] button")
    assert page.get_attribute("[data-verification]", "data-verification") == "ok"
    assert watch.console_errors == []
    assert watch.page_errors == []
    assert watch.outside == []
    assert any(u.endswith("/ui/static/workbench.js") for u in watch.requests)


def test_a_reader_sees_no_review_form_and_no_audit_page(open_page, workbench):
    page, _ = open_page(Role.READER)
    assert page.query_selector("[data-nav=audit]") is None
    page.goto(firm_url(workbench, VIOLATOR, as_of="2025-06-01"))
    assert page.query_selector_all("tr[data-finding]")
    assert page.query_selector("[data-review-form]") is None
    assert page.goto(workbench.base + "/ui/audit").status == 403
    assert page.goto(workbench.base + "/ui/webhooks").status == 403


def test_a_review_posted_from_the_page_is_in_the_api_and_the_log(open_page, workbench):
    page, _ = open_page(Role.WRITER)
    page.goto(firm_url(workbench, VIOLATOR, as_of="2025-06-01"))
    row = page.locator("tr[data-finding][data-status=violation]").first
    finding = row.get_attribute("data-finding")
    assert row.get_attribute("data-review") == "unreviewed"
    row.locator("summary").click()
    row.locator("select[name=decision]").select_option("remediation_planned")
    row.locator("textarea[name=reason]").fill("licence application filed with BIS")
    with page.expect_navigation():
        row.locator("button[type=submit]").click()
    row = page.locator(f"tr[data-finding='{finding}']")
    assert row.get_attribute("data-review") == "remediation_planned"
    (review,) = workbench.get(f"/v1/firms/{VIOLATOR}/reviews")["reviews"]
    assert f"{review['subject_type']}/{review['subject_id']}/{review['regulation_id']}" \
        == finding
    assert review["decision"] == "remediation_planned"
    assert review["recorded_by"]["name"] == "writer officer"
    assert review["stale"] is False
    (event,) = workbench.get("/v1/events", after=review["position"] - 1, limit=1)["events"]
    assert event["type"] == "FindingReviewed"
    assert event["recorded_by"]["role"] == "writer"


def test_screenshots_of_the_worklist_and_a_firm_page(open_page, workbench, tmp_path):
    """Written to CHIPLEDGER_TEST_SCREENSHOTS when set (docs/screenshots/ for the README)."""
    out = Path(os.environ.get("CHIPLEDGER_TEST_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    page, _ = open_page(Role.WRITER)
    page.screenshot(path=str(out / "worklist.png"), full_page=True)
    page.goto(firm_url(workbench, LATE, as_of="2025-07-01"))
    page.screenshot(path=str(out / "firm.png"), full_page=True)
    assert (out / "worklist.png").stat().st_size > 10_000
    assert (out / "firm.png").stat().st_size > 10_000
