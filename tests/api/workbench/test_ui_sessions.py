"""Signing in to the workbench: opaque HttpOnly SameSite=Strict cookies (Secure over https)
that expire when idle and die with their key; a CSRF token on every form; a strict CSP on
every page; nothing of the workbench without a session."""

import time

import pytest
from fastapi import routing
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from tests.api.workbench.conftest import csrf_of, sign_in

OPEN = {"/ui/login"}


def _all_routes(app):
    iterate = getattr(routing, "iter_route_contexts", None)  # FastAPI 0.165+: router branches
    if iterate is None:
        return list(app.routes)
    return [context.original_route for context in iterate(app.routes)]


def ui_routes(app) -> list[tuple[str, str]]:
    found = []
    for route in _all_routes(app):
        if isinstance(route, APIRoute) and route.path.startswith("/ui") \
                and route.path not in OPEN:
            found += [(m, route.path) for m in sorted(route.methods - {"HEAD"})]
    return found


def concrete(path: str) -> str:
    return (path.replace("{firm_id}", "alibaba").replace("{kind}", "firm")
            .replace("{record_id}", "alibaba").replace("{position}", "1")
            .replace("{endpoint_id}", "wh-x"))


class TestWithoutASession:
    def test_every_workbench_route_sends_a_stranger_to_the_sign_in_form(self, client):
        routes = ui_routes(client.app)
        assert len(routes) >= 12  # the walk sees the pages: it is not vacuously empty
        for method, path in routes:
            response = client.request(method, concrete(path), follow_redirects=False)
            assert response.status_code == 303, (method, path, response.text)
            assert response.headers["location"] == "/ui/login"

    def test_a_forged_or_unknown_cookie_opens_nothing(self, client):
        client.cookies.set("chipledger_ui", "forged", path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303


class TestSigningIn:
    def test_a_valid_key_opens_a_session_with_a_strict_cookie(self, client, api_keys):
        form = client.get("/ui/login")
        assert form.status_code == 200
        response = client.post("/ui/login", data={"api_key": api_keys[Role.READER],
                                                  "csrf": csrf_of(form.text)},
                               follow_redirects=False)
        assert response.status_code == 303
        cookie = next(v for k, v in response.headers.multi_items()
                      if k == "set-cookie" and v.startswith("chipledger_ui="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/ui"} <= flags
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        assert api_keys[Role.READER] not in cookie
        assert client.get("/ui/").status_code == 200

    def test_over_https_the_cookie_is_secure(self, container, api_keys):
        with TestClient(create_app(container=container), base_url="https://testserver") as c:
            form = c.get("/ui/login")
            response = c.post("/ui/login", data={"api_key": api_keys[Role.READER],
                                                 "csrf": csrf_of(form.text)},
                              follow_redirects=False)
            assert "secure" in response.headers["set-cookie"].lower()

    def test_an_unknown_key_is_refused_with_the_form_again(self, client):
        form = client.get("/ui/login")
        response = client.post("/ui/login", data={"api_key": "clk_nope", "csrf":
                                                  csrf_of(form.text)}, follow_redirects=False)
        assert response.status_code == 401
        assert "unknown or revoked API key" in response.text
        assert "chipledger_ui=" not in response.headers.get("set-cookie", "").split(";")[0] \
            or response.headers["set-cookie"].startswith("chipledger_ui_login=")

    def test_signing_in_without_the_forms_csrf_token_is_refused(self, client, api_keys):
        client.get("/ui/login")
        response = client.post("/ui/login", data={"api_key": api_keys[Role.ADMIN]},
                               follow_redirects=False)
        assert response.status_code == 403

    def test_signing_out_ends_the_session_even_for_a_kept_cookie(self, client, api_keys):
        sign_in(client, api_keys[Role.WRITER])
        token = client.cookies.get("chipledger_ui")
        page = client.get("/ui/")
        assert client.post("/ui/logout", data={"csrf": csrf_of(page.text)},
                           follow_redirects=False).status_code == 303
        client.cookies.set("chipledger_ui", token, path="/ui")
        assert client.get("/ui/", follow_redirects=False).status_code == 303

    def test_signing_out_needs_the_csrf_token(self, client, api_keys):
        sign_in(client, api_keys[Role.WRITER])
        assert client.post("/ui/logout", data={}, follow_redirects=False).status_code == 403
        assert client.get("/ui/").status_code == 200

    def test_a_revoked_key_ends_its_sessions(self, client, container, api_keys):
        sign_in(client, api_keys[Role.READER])
        ring = KeyRing(container.store)
        reader = next(k for k in ring.all_keys() if k.role == "reader")
        ring.revoke(reader.key_id)
        assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_an_idle_session_expires(settings):
    settings = settings.model_copy(update={"ui_session_idle_minutes": 0.01})  # 0.6 s
    container = bootstrap(settings)
    try:
        key = KeyRing(container.store).create(Role.READER)[1]
        with TestClient(create_app(container=container)) as client:
            sign_in(client, key)
            assert client.get("/ui/").status_code == 200
            time.sleep(0.3)
            assert client.get("/ui/").status_code == 200  # a request moves the idle clock on
            time.sleep(0.3)
            assert client.get("/ui/").status_code == 200
            time.sleep(0.8)
            assert client.get("/ui/", follow_redirects=False).status_code == 303
    finally:
        container.close()


@pytest.mark.usefixtures("demo")
class TestPages:
    PAGES = ("/ui/", "/ui/firms/zhiyuan-compute", "/ui/records/firm/alibaba", "/ui/events/1",
             "/ui/regulations", "/ui/audit", "/ui/integrity", "/ui/webhooks", "/ui/login")

    def test_every_page_has_the_strict_content_security_policy(self, signed_in):
        client = signed_in("admin")
        for path in self.PAGES:
            response = client.get(path)
            assert response.status_code == 200, (path, response.text)
            policy = response.headers["content-security-policy"]
            assert policy.startswith("default-src 'self'"), path
            assert "unsafe-inline" not in policy
            assert "<script>" not in response.text, path  # scripts come from files only
            assert " style=" not in response.text, path
            assert response.headers["x-content-type-options"] == "nosniff"

    def test_every_form_carries_the_sessions_csrf_token(self, signed_in):
        client = signed_in("admin")
        for path in self.PAGES[:-1]:
            html = client.get(path).text
            forms = html.count('method="post"')
            assert html.count('name="csrf"') == forms, path

    def test_a_form_post_without_its_csrf_token_writes_nothing(self, signed_in, client,
                                                                as_role):
        signed_in("writer")
        head = client.get("/v1/integrity", headers=as_role("reader")).json()["head_position"]
        for path, form in (("/ui/firms/zhiyuan-compute/reviews", {"decision": "acknowledged"}),
                           ("/ui/integrity", {}), ("/ui/audit", {})):
            response = client.post(path, data={**form, "csrf": "wrong"},
                                   follow_redirects=False)
            assert response.status_code == 403, path
        after = client.get("/v1/integrity", headers=as_role("reader")).json()["head_position"]
        assert after == head

    def test_a_reader_sees_no_review_form_and_no_audit_page(self, signed_in):
        client = signed_in("reader")
        firm = client.get("/ui/firms/zhiyuan-compute", params={"as_of": "2025-06-01"}).text
        assert "data-finding=" in firm
        assert "data-review-form" not in firm
        assert 'href="/ui/audit"' not in client.get("/ui/").text
        assert client.get("/ui/audit").status_code == 403
        assert client.get("/ui/webhooks").status_code == 403
        assert client.post("/ui/firms/zhiyuan-compute/reviews",
                           data={"csrf": csrf_of(firm)}).status_code == 403

    def test_the_csv_holds_the_pages_findings(self, signed_in, posture_of):
        client = signed_in("reader")
        answer = posture_of("zhiyuan-compute", as_of="2025-06-01")
        response = client.get("/ui/firms/zhiyuan-compute/findings.csv",
                              params={"as_of": "2025-06-01"})
        assert response.headers["content-type"].startswith("text/csv")
        lines = response.text.strip().splitlines()
        assert lines[0].startswith("subject_type,subject_id,regulation_id")
        assert len(lines) == 1 + len(answer["findings"])
        assert all(f["subject_id"] in response.text for f in answer["findings"])


def test_a_workbench_problem_is_a_page_and_an_api_problem_stays_json(signed_in, client,
                                                                      as_role):
    page = signed_in("reader")
    shown = page.get("/ui/firms/nobody")
    assert shown.status_code == 404
    assert shown.headers["content-type"].startswith("text/html")
    assert "data-problem=\"404\"" in shown.text
    assert shown.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.get("/ui/audit").headers["content-type"].startswith("text/html")
    api = client.get("/v1/firms/nobody", headers=as_role("reader"))
    assert api.status_code == 404
    assert api.headers["content-type"].startswith("application/problem+json")
    refused = client.post("/v1/reviews", json={}, headers=as_role("reader"))
    assert refused.headers["content-type"].startswith("application/problem+json")
