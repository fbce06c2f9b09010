"""`min_position`: a read waits for the read models to reach a position the log has, without
holding a worker thread, and refuses at once a position the log does not have.

The app runs without its projection runner, so the read models stay where the test leaves
them; the concurrency test serves it with a real uvicorn server.
"""

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

import api.deps as deps
from api.app import create_app
from infra.bootstrap import Container
from infra.runner import ProjectionRunner
from tests.support.data import ALIBABA, H20, H20_RULE

Headers = dict[str, str]
WAITS = 40  # as many as the server's default thread pool has threads
READS = ["/v1/firms/alibaba/posture", "/v1/firms/alibaba/residency",
         "/v1/firms/alibaba/timeline", "/v1/firms/alibaba/restatements", "/v1/posture",
         "/v1/firms", "/v1/firms/alibaba/posture/diff"]


@pytest.fixture
def quiet(container: Container) -> Iterator[TestClient]:
    """The API without its background workers: nothing projects unless the test does."""
    with TestClient(create_app(container=container, workers=False)) as client:
        yield client


def _record_world(client: TestClient, writer: Headers) -> int:
    position = 0
    for path, body in (("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE)):
        answer = client.post(f"/v1/{path}", json=body, headers=writer)
        assert answer.status_code == 201, answer.text
        position = answer.json()["position"]
    return position


@pytest.mark.parametrize("path", READS)
def test_a_min_position_beyond_the_head_is_refused_at_once_naming_the_head(
        quiet: TestClient, container: Container, writer: Headers, path: str) -> None:
    head = _record_world(quiet, writer)
    ProjectionRunner(container).catch_up()
    response = quiet.get(path, params={"min_position": head + 1}, headers=writer)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert [e["field"] for e in problem["errors"]] == ["query.min_position"]
    assert f"head of the log, at position {head}" in problem["detail"]
    # The head itself, reached, is read at once.
    assert quiet.get(path, params={"min_position": head}, headers=writer).status_code == 200


def test_a_reachable_position_not_reached_in_5_s_is_a_503_with_retry_after(
        quiet: TestClient, writer: Headers) -> None:
    head = _record_world(quiet, writer)
    response = quiet.get("/v1/firms/alibaba/posture", params={"min_position": head},
                         headers=writer)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    assert response.headers["content-type"].startswith("application/problem+json")
    assert f"reached position 0, not yet {head}" in response.json()["detail"]


class Server:
    """The app served by uvicorn on a free port of 127.0.0.1, in a thread."""

    def __init__(self, container: Container) -> None:
        config = uvicorn.Config(create_app(container=container, workers=False),
                                host="127.0.0.1", port=0, log_config=None, access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            self.thread.join(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def test_forty_waiting_reads_do_not_stall_the_other_reads(
        container: Container, writer: Headers, monkeypatch: pytest.MonkeyPatch) -> None:
    # Step 1: count the reads that have begun to wait for a position (the real wait runs).
    waiting: list[int] = []
    wait = deps.waited

    async def counted(service: Any, min_position: Any) -> Any:
        if min_position is not None:
            waiting.append(min_position)
        return await wait(service, min_position)

    monkeypatch.setattr(deps, "waited", counted)
    with Server(container) as base, httpx.Client(base_url=base, headers=writer,
                                                 timeout=30) as http, \
            ThreadPoolExecutor(WAITS) as pool:
        # Step 2: a world is recorded; nothing projects it yet.
        head = 0
        for path, body in (("chip-models", H20), ("firms", ALIBABA), ("regulations", H20_RULE)):
            answer = http.post(f"/v1/{path}", json=body)
            assert answer.status_code == 201, answer.text
            head = answer.json()["position"]
        # Step 3: forty reads wait for the head (as many as the server has threads).
        waits: list[Future[httpx.Response]] = [
            pool.submit(http.get, "/v1/firms/alibaba/posture", params={"min_position": head})
            for _ in range(WAITS)]
        while len(waiting) < WAITS:
            assert not any(w.done() for w in waits), [w.result().text for w in waits
                                                      if w.done()][:1]
            threading.Event().wait(0.01)
        # Step 4: other reads are answered while all forty still wait.
        for path in ("/v1/firms/alibaba", "/v1/events", "/v1/posture", "/readyz"):
            assert http.get(path).status_code == 200
        assert not any(w.done() for w in waits)
        # Step 5: once the projection reaches the head, every wait is answered at it.
        ProjectionRunner(container).catch_up()
        answers = [w.result() for w in waits]
    assert [a.status_code for a in answers] == [200] * WAITS
    assert {a.json()["position"] for a in answers} == {head}
