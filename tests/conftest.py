"""Fixtures that run the same tests on SQLite and on PostgreSQL.

PostgreSQL tests need CHIPLEDGER_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test).
Without it they skip, saying why; with CHIPLEDGER_REQUIRE_POSTGRES=1 (as in CI) they fail.
Each PostgreSQL test gets a schema of its own, dropped afterwards.
"""

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog
from fastapi.testclient import TestClient

from api.app import create_app
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from tests.support.databases import BACKENDS, database_for


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_for(getattr(request, "param", "sqlite"), tmp_path) as url:
        yield url


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back afterwards."""
    saved_config = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    access = logging.getLogger("uvicorn.access")
    saved_disabled = access.disabled
    try:
        yield
    finally:
        structlog.configure(**saved_config)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        access.disabled = saved_disabled


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every test that uses the database runs once per backend."""
    if "database_url" in metafunc.fixturenames and "backend_fixed" not in metafunc.fixturenames:
        metafunc.parametrize("database_url", BACKENDS, indirect=True)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(database_url=database_url, auth="enabled", log_format="console",
                    poll_interval=0.05, signing_key_file=str(tmp_path / "signing-key.pem"))


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    built = bootstrap(settings)
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container=container)) as test_client:
        yield test_client


@pytest.fixture
def api_keys(container: Container) -> dict[Role, str]:
    ring = KeyRing(container.store)
    return {role: ring.create(role)[1] for role in Role}


@pytest.fixture
def as_role(api_keys: dict[Role, str]) -> Callable[[str], dict[str, str]]:
    def headers(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_keys[Role(role)]}"}

    return headers


@pytest.fixture
def writer(as_role: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return as_role("writer")


@pytest.fixture
def admin(as_role: Callable[[str], dict[str, str]]) -> dict[str, str]:
    return as_role("admin")
