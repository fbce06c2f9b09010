"""Reads served by a real hot standby (.ci/replica) when it has replayed what the read needs,
and by the primary when it has not; the standby's lag in /readyz and /metrics."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.app import create_app
from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from tests.support.data import record_world
from tests.support.databases import database_for
from tests.support.replica import replay_paused, replica_url
from tests.support.tcp_proxy import TcpProxy


def _wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app on a fresh primary schema, with the standby as its read replica."""
    with _app(tmp_path, replica_url()) as app:
        yield app


@pytest.fixture
def proxied() -> Iterator[TcpProxy]:
    """A forwarder to the standby, which a test can cut."""
    url = urlsplit(replica_url())
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()


@contextmanager
def _app(tmp_path: Path, standby: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with database_for("postgres", tmp_path) as primary:
        settings = Settings(database_url=primary, read_database_urls=standby,
                            log_format="console", poll_interval=0.05,
                            signing_key_file=str(tmp_path / "key.pem"))
        container = bootstrap(settings)
        try:
            with TestClient(create_app(container=container)) as client:
                key = KeyRing(container.store).create(Role.ADMIN)[1]
                yield client, {"Authorization": f"Bearer {key}"}
        finally:
            container.close()


def _served(client: TestClient) -> dict[str, int]:
    return dict(client.app.state.container.reads.served)  # type: ignore[attr-defined]


def _replayed(client: TestClient, position: int) -> Callable[[], bool]:
    standby = client.app.state.container.reads.standbys[0]  # type: ignore[attr-defined]
    posture = client.app.state.posture  # type: ignore[attr-defined]
    return lambda: (posture.projected() >= position
                    and standby.source.findings.tracking("findings") >= position)


def _posture(client: TestClient, admin: dict[str, str], **query: str) -> dict[str, object]:
    response = client.get("/v1/firms/alibaba/posture", headers=admin, params=query)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_lagging_replica_serves_only_the_reads_it_covers(replicated):
    client, admin = replicated
    # Step 1: the world is recorded, projected on the primary and replayed on the standby.
    record_world(client, admin)
    first = client.get("/v1/events", headers=admin, params={"after": 0, "limit": 1000}).json()
    head = first["events"][-1]
    _wait_until(_replayed(client, head["position"]))
    before = _posture(client, admin)
    assert before["position"] == head["position"]
    with replay_paused():
        # Step 2: a correction lands on the primary; the standby does not replay it.
        corrected = client.post("/v1/shipments/ship-h20-0501/corrections", headers=admin,
                                json={"quantity": 1200, "reason": "invoice"}).json()
        _wait_until(lambda: client.app.state.posture.projected() >= corrected["position"])
        # Step 3: a read of now needs the correction: the primary serves it.
        served = _served(client)
        now = _posture(client, admin)
        assert now["position"] == corrected["position"]
        assert any("1200" in f["explanation"] for f in now["findings"])
        after = _served(client)
        assert after.get("primary", 0) > served.get("primary", 0)
        assert after.get("127.0.0.1:5433", 0) == served.get("127.0.0.1:5433", 0)
        # Step 4: a read as known before it is covered by the standby, which serves it.
        then = _posture(client, admin, known_at=head["recorded_at"])
        assert then == {**before, "known_at": then["known_at"]}
        assert _served(client)["127.0.0.1:5433"] > after.get("127.0.0.1:5433", 0)
        assert _served(client).get("primary", 0) == after.get("primary", 0)
        # Step 5: /readyz and /metrics show the standby paused and behind.
        replica = client.get("/readyz").json()["replicas"][0]
        assert replica["name"] == "127.0.0.1:5433"
        assert replica["status"] == "paused"
        assert replica["head_position"] == head["position"]
        assert replica["lag_events"] == corrected["position"] - head["position"] > 0
        assert replica["projection_lag_events"] > 0
        assert replica["lag_seconds"] > 0
        metrics = client.get("/metrics", headers=admin).text
        lag = corrected["position"] - head["position"]
        assert f'chipledger_replica_lag_events{{replica="127.0.0.1:5433"}} {lag}.0' in metrics
    # Step 6: replay resumed, the standby catches up and serves reads of now again.
    _wait_until(_replayed(client, corrected["position"]))
    served = _served(client)
    again = _posture(client, admin)
    assert again == {**now, "known_at": again["known_at"]}
    assert _served(client)["127.0.0.1:5433"] > served["127.0.0.1:5433"]
    replica = client.get("/readyz").json()["replicas"][0]
    assert replica["status"] == "streaming"
    assert replica["lag_events"] == 0


def test_a_standby_that_dies_under_reads_hands_them_to_the_primary(tmp_path, proxied):
    name = f"127.0.0.1:{proxied.port}"
    with _app(tmp_path, f"postgresql://postgres@{name}/test") as (client, admin):
        # Step 1: the standby, reached through the forwarder, serves the reads of now.
        record_world(client, admin)
        head = client.get("/v1/events", headers=admin, params={"limit": 1000}).json()
        _wait_until(_replayed(client, head["events"][-1]["position"]))
        before = _posture(client, admin)
        assert _served(client)[name] > 0
        # Step 2: the standby's connections are cut while it is still trusted to cover
        # them: the reads still answer, from the primary, the same.
        proxied.kill()
        served = _served(client)
        after = _posture(client, admin)
        assert after == {**before, "known_at": after["known_at"]}
        assert _served(client)["primary"] > served.get("primary", 0)
        assert _served(client)[name] == served[name]
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["replicas"][0]["status"] == "unavailable"
        metrics = client.get("/metrics", headers=admin).text
        assert f'chipledger_replica_up{{replica="{name}"}} 0.0' in metrics
        # Step 3: back, it serves reads again once its few seconds off are over.
        proxied.start()
        _wait_until(lambda: _posture(client, admin) is not None
                    and _served(client)[name] > served[name], timeout=15)


def test_replicas_are_postgresql_standbys_of_a_postgresql_primary():
    with pytest.raises(ValidationError, match="needs a PostgreSQL"):
        Settings(database_url="sqlite:///x.db", read_database_urls="postgresql://h/db")
    with pytest.raises(ValidationError, match="hot standby"):
        Settings(database_url="postgresql://h/db", read_database_urls="sqlite:///x.db")


def test_a_replica_url_without_a_schema_reads_the_primarys():
    settings = Settings(database_url="postgresql://p/db?schema=tenant_a",
                        read_database_urls=" postgresql://r1/db , postgresql://r2/db?schema=b")
    assert settings.read_urls == ["postgresql://r1/db?schema=tenant_a",
                                  "postgresql://r2/db?schema=b"]
