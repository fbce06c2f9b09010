"""A ledger with webhooks for the tests of this folder: the app without background workers,
a dispatcher driven by hand, settings each test can adjust (`hook_update`)."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from infra.bootstrap import Container, bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from infra.webhooks import Dispatcher
from tests.support.webhooks import TIMEOUT, Api, Pump, Receiver

Build = Callable[..., Dispatcher]


@pytest.fixture
def hook_update() -> dict[str, Any]:
    return {}


@pytest.fixture
def hooked(settings: Settings, hook_update: dict[str, Any]) -> Iterator[Container]:
    built = bootstrap(settings.model_copy(update={
        "webhook_allow_local": True, "webhook_timeout": TIMEOUT,
        "webhook_backoff_scale": 0.001, **hook_update}))
    try:
        yield built
    finally:
        built.close()


@pytest.fixture
def keys(hooked: Container) -> dict[Role, dict[str, str]]:
    ring = KeyRing(hooked.store)
    return {role: {"Authorization": f"Bearer {ring.create(role)[1]}"} for role in Role}


@pytest.fixture
def api(hooked: Container, keys: dict[Role, dict[str, str]]) -> Iterator[Api]:
    with TestClient(create_app(container=hooked, workers=False)) as client:
        yield Api(client, keys)


@pytest.fixture
def live(hooked: Container, keys: dict[Role, dict[str, str]]) -> Iterator[Api]:
    """The app with its own background workers: the projection runner and the dispatcher."""
    with TestClient(create_app(container=hooked)) as client:
        yield Api(client, keys)


@pytest.fixture
def dispatchers(hooked: Container) -> Iterator[Build]:
    """Builds dispatchers on the ledger, closed afterwards."""
    built: list[Dispatcher] = []

    def build(**options: Any) -> Dispatcher:
        built.append(Dispatcher(hooked, timeout=TIMEOUT, backoff_scale=0.001, **options))
        return built[-1]
    try:
        yield build
    finally:
        for d in built:
            d.close()


@pytest.fixture
def pump(hooked: Container, dispatchers: Build) -> Pump:
    return Pump(hooked, dispatchers())


@pytest.fixture
def receivers() -> Iterator[Callable[[], Receiver]]:
    """Starts receivers, stopped afterwards."""
    started: list[Receiver] = []

    def start() -> Receiver:
        started.append(Receiver())
        started[-1].start()
        return started[-1]
    try:
        yield start
    finally:
        for r in started:
            r.stop()
