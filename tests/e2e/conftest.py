"""The workbench served on the demo story, with a key per role and a fresh browser page."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from api.demo import record_story
from infra.bootstrap import Container
from infra.keys import KeyRing, Role
from infra.runner import ProjectionRunner
from tests.e2e.browser import CHROMIUM, Watch, chromium_missing, serving


# One browser a module, not a session: Playwright's sync API keeps an event loop running in
# this thread while it lives, and later tests in the same process run loops of their own.
@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    reason = chromium_missing()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Workbench:
    base: str
    keys: dict[Role, str]
    api: httpx.Client

    def get(self, path: str, role: Role = Role.READER, **params: Any) -> Any:
        response = self.api.get(path, params=params,
                                headers={"Authorization": f"Bearer {self.keys[role]}"})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def workbench(container: Container) -> Iterator[Workbench]:
    record_story(container)
    ProjectionRunner(container).project_to_head()
    ring = KeyRing(container.store)
    keys = {role: ring.create(role, f"{role.value} officer")[1] for role in Role}
    with serving(container) as base, httpx.Client(base_url=base, timeout=30) as api:
        yield Workbench(base, keys, api)


@pytest.fixture
def open_page(chromium: Any, workbench: Workbench
              ) -> Iterator[Callable[[Role], tuple[Any, Watch]]]:
    """A new browser context signed in with the role's key through the form."""
    contexts = []

    def signed_in(role: Role) -> tuple[Any, Watch]:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        watch = Watch(workbench.base)
        watch.attach(page)
        page.goto(workbench.base + "/ui/")
        assert page.url == workbench.base + "/ui/login"
        page.fill("#api_key", workbench.keys[role])
        page.click("button[type=submit]")
        page.wait_for_url(workbench.base + "/ui/")
        return page, watch

    yield signed_in
    for context in contexts:
        context.close()
