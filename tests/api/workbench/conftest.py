"""The demo story loaded in the test's database: what the workbench is shown on."""

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.demo import record_story
from infra.bootstrap import Container
from infra.keys import Role
from infra.runner import ProjectionRunner


@pytest.fixture
def demo(container: Container) -> Container:
    record_story(container)
    ProjectionRunner(container).project_to_head()
    return container


@pytest.fixture
def posture_of(client: TestClient, as_role: Callable[[str], dict[str, str]]
               ) -> Callable[..., dict[str, Any]]:
    def read(firm_id: str, **query: str) -> dict[str, Any]:
        response = client.get(f"/v1/firms/{firm_id}/posture", params=query,
                              headers=as_role("reader"))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return read


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client: TestClient, key: str) -> TestClient:
    """Sign `client` in through the form, as a browser does; its cookie jar keeps the session."""
    form = client.get("/ui/login")
    response = client.post("/ui/login", data={"api_key": key, "csrf": csrf_of(form.text)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui/"
    return client


@pytest.fixture
def signed_in(client: TestClient, api_keys: dict[Role, str]) -> Callable[[str], TestClient]:
    def as_role(role: str) -> TestClient:
        client.cookies.clear()
        return sign_in(client, api_keys[Role(role)])

    return as_role
