"""One projection runner per database, on SQLite as on PostgreSQL: of the processes on one
database only the holder of the projection's lead projects, another takes over when it dies,
and a one-off catch-up beside a running server (`chipledger demo`) waits for the server's
runner rather than racing it with a second one. Each process is a real `chipledger`."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import cli as chipledger
from api.demo import story
from bench.serving import free_port
from infra.bootstrap import bootstrap
from infra.settings import Settings

CHIPLEDGER = str(Path(sys.executable).parent / "chipledger")
STORY_EVENTS = sum(len(lines) for _, lines in story())

pytestmark = pytest.mark.slow  # processes beside each other


def _until(condition: Callable[[], Any], what: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Process:
    """A chipledger command running beside the test, its JSON log in a file."""

    def __init__(self, tmp_path: Path, name: str, database_url: str, *args: str,
                 output: int = subprocess.DEVNULL) -> None:
        self.log = tmp_path / f"{name}.log"
        env = {**os.environ, "CHIPLEDGER_DATABASE_URL": database_url,
               "CHIPLEDGER_AUTH": "disabled", "CHIPLEDGER_LOG_FORMAT": "json",
               "CHIPLEDGER_POLL_INTERVAL": "0.05",
               "CHIPLEDGER_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem")}
        with self.log.open("wb") as sink:
            self.popen = subprocess.Popen([CHIPLEDGER, *args], env=env, stdout=output,
                                          stderr=sink)

    def events(self) -> list[str]:
        return [json.loads(line).get("event", "") for line in self.log.read_text().splitlines()
                if line.startswith("{")]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # were it frozen
            self.popen.terminate()
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        if self.popen.stdout:
            self.popen.stdout.close()


@contextmanager
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def serve(tmp_path: Path, name: str, database_url: str) -> tuple[Process, str]:
    port = free_port()
    server = Process(tmp_path, name, database_url, "serve", "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert server.popen.poll() is None, server.log.read_text()[-3000:]
        try:
            return httpx.get(base + "/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    _until(ready, f"{name} to be ready")
    return server, base


def lag(base: str) -> int:
    return int(httpx.get(base + "/readyz", timeout=10).json()["projections"]["findings"]["lag"])


def test_the_demo_beside_a_running_server_waits_for_the_servers_runner(database_url, tmp_path):
    with processes() as running:
        # Step 1: a server runs the projection of the database.
        server, base = serve(tmp_path, "server", database_url)
        running.append(server)
        # Step 2: it is frozen: it keeps the lead, but projects nothing.
        server.popen.send_signal(signal.SIGSTOP)
        # Step 3: the demo records its story, then waits for the leader, not projecting it.
        demo = Process(tmp_path, "demo", database_url, "demo", output=subprocess.PIPE)
        running.append(demo)
        container = bootstrap(Settings(database_url=database_url))
        try:
            _until(lambda: (head := container.store.head()) and head.position == STORY_EVENTS,
                   "the story to be recorded")
        finally:
            container.close()
        assert demo.popen.poll() is None, "the demo finished without the leader"
        # Step 4: the server thaws; its runner projects the story, and the demo then prints
        # the postures from the read model the server wrote.
        server.popen.send_signal(signal.SIGCONT)
        out, _ = demo.popen.communicate(timeout=120)
        assert demo.popen.returncode == 0, demo.log.read_text()[-3000:]
        printed = out.decode()
        assert "zhiyuan-compute: posture over time" in printed
        assert "│ violation │ us-bis-h20-2025" in printed
        _until(lambda: lag(base) == 0, "the server's projection to reach the head")
        # Step 5: one runner only: the server's never found another's rows in its way.
        events = server.events()
        assert "projection_batch_failed" not in events
        assert "projection_moved_on_elsewhere" not in events
        assert "projection_loaded" not in demo.events()


def test_of_two_servers_on_one_database_one_projects_and_the_other_takes_over(
    database_url, tmp_path
):
    with processes() as running:
        # Step 1: two servers run on one database; both serve appends.
        first, first_base = serve(tmp_path, "first", database_url)
        running.append(first)
        second, second_base = serve(tmp_path, "second", database_url)
        running.append(second)
        for n, base in enumerate([first_base, second_base] * 3):
            answer = httpx.post(base + "/v1/firms", json={"id": f"f-{n}", "name": "F",
                                                          "hq_country": "SG"}, timeout=30)
            assert answer.status_code == 201, answer.text
        _until(lambda: lag(first_base) == 0, "the projection to reach the head")
        # Step 2: only one of them loaded the projection and ran it.
        leaders = [p for p in (first, second) if "projection_loaded" in p.events()]
        assert len(leaders) == 1, [p.events() for p in (first, second)]
        leader, other = leaders[0], first if leaders[0] is second else second
        # Step 3: the leader dies; the other takes over and projects what comes next.
        leader.popen.kill()
        leader.popen.wait()
        survivor = second_base if other is second else first_base
        answer = httpx.post(survivor + "/v1/firms", json={"id": "after", "name": "F",
                                                          "hq_country": "SG"}, timeout=30)
        assert answer.status_code == 201, answer.text
        _until(lambda: lag(survivor) == 0, "the survivor to take over")
        assert "projection_loaded" in other.events()
        for process in (first, second):
            assert "projection_batch_failed" not in process.events()


def test_a_rebuild_refuses_in_one_line_while_another_runner_leads(database_url: str) -> None:
    # Step 1: a database whose findings projection is led by a running runner (held here).
    settings = Settings(database_url=database_url, log_format="console")
    container = bootstrap(settings)
    lead = container.backend.lead("findings")
    try:
        assert lead.take()
        # Step 2: `chipledger rebuild` would drop and refill the leader's rows: it refuses,
        # saying what to do, with exit code 2 and no traceback.
        result = CliRunner().invoke(chipledger, ["rebuild"],
                                    env={"CHIPLEDGER_DATABASE_URL": database_url})
        assert result.exit_code == 2, result.output
        assert "leads the findings projection of this database: stop it" in result.stderr
        assert "Traceback" not in result.output
    finally:
        lead.release()
        container.close()
    # Step 3: with the leader gone, the rebuild runs.
    result = CliRunner().invoke(chipledger, ["rebuild"],
                                env={"CHIPLEDGER_DATABASE_URL": database_url})
    assert result.exit_code == 0, result.output
