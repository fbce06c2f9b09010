"""/docs and /redoc in real headless Chromium with the network cut off from everything but the
server: the pages render from the assets the server ships, under their CSP, with a clean
console (a CSP violation is a console error)."""

from collections.abc import Iterator
from typing import Any

import pytest

from infra.bootstrap import Container
from tests.e2e.browser import Watch, serving

pytestmark = pytest.mark.slow
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_page(chromium: Any, container: Container) -> Iterator[tuple[Any, Watch, list[str]]]:
    """A page whose every request outside the server is aborted (and noted)."""
    with serving(container) as base:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        blocked: list[str] = []

        def only_the_server(route: Any) -> None:
            if route.request.url.startswith(base + "/"):
                route.continue_()
            else:
                blocked.append(route.request.url)
                route.abort()

        context.route("**/*", only_the_server)
        page = context.new_page()
        watch = Watch(base)
        watch.attach(page)
        page.base = base
        try:
            yield page, watch, blocked
        finally:
            context.close()


def test_swagger_ui_renders_offline(offline_page):
    page, watch, blocked = offline_page
    response = page.goto(page.base + "/docs")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    try:
        page.wait_for_selector(".swagger-ui .info .title", timeout=60_000)
    except Exception:
        raise AssertionError((watch.console_errors, watch.page_errors, blocked)) from None
    assert "chipledger" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock", timeout=60_000)
    assert page.locator(".opblock").count() >= 50  # every operation is listed
    assert blocked == []
    assert watch.outside == []
    assert watch.console_errors == []
    assert watch.page_errors == []


def test_redoc_renders_offline(offline_page):
    page, watch, blocked = offline_page
    response = page.goto(page.base + "/redoc")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    try:
        page.wait_for_selector("h1:has-text('chipledger')", timeout=30_000)
    except Exception:
        raise AssertionError((watch.console_errors, watch.page_errors, blocked)) from None
    # ReDoc's bundle asks for its "powered by" logo on its CDN: refused (the page renders
    # without it); nothing else may leave the server.
    assert set(blocked) <= {REDOC_LOGO}
    assert set(watch.outside) <= {REDOC_LOGO}
    assert watch.page_errors == []
    assert [e for e in watch.console_errors if REDOC_LOGO not in e] == []
