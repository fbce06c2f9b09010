"""`chipledger serve --processes N`: several API processes on one port, PostgreSQL only."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from api.cli import cli as chipledger
from bench.serving import free_port, wait_ready
from tests.support.databases import database_for

CHIPLEDGER = Path(sys.executable).parent / "chipledger"


def test_more_than_one_process_is_refused_on_sqlite(tmp_path):
    result = CliRunner().invoke(chipledger, ["serve", "--processes", "2"], env={
        "CHIPLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
    assert result.exit_code == 2
    assert "--processes above 1 needs PostgreSQL" in result.output
    assert not (tmp_path / "ledger.db").exists()  # refused before touching the database


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_append_to_one_chain(tmp_path):
    with database_for("postgres", tmp_path) as url:
        port = free_port()
        env = {**os.environ, "CHIPLEDGER_DATABASE_URL": url, "CHIPLEDGER_AUTH": "disabled",
               "CHIPLEDGER_LOG_LEVEL": "warning",
               "CHIPLEDGER_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem")}
        server = subprocess.Popen([str(CHIPLEDGER), "serve", "--port", str(port),
                                   "--processes", "3"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, server)

            def create(n: int) -> httpx.Response:
                # Fresh connections: the kernel spreads them over the processes.
                with httpx.Client(base_url=base, timeout=30) as client:
                    return client.post("/v1/firms", json={
                        "id": f"p-{n}" if n % 4 else "shared", "name": "P",
                        "hq_country": "SG"})

            with ThreadPoolExecutor(16) as pool:
                answers = list(pool.map(create, range(120)))
            shared = [a for n, a in enumerate(answers) if n % 4 == 0]
            own = [a for n, a in enumerate(answers) if n % 4]
            assert all(a.status_code == 201 for a in own), [a.text for a in own]
            # The same record created from many processes at once: one write, the rest repeat
            assert sorted(a.status_code for a in shared) == [200] * 29 + [201]
            assert {a.json()["position"] for a in shared} == {shared[0].json()["position"]}
            positions = sorted({a.json()["position"] for a in answers})
            assert positions == list(range(1, 92))
            check = httpx.post(base + "/v1/integrity/verification", timeout=30).json()
            assert check["ok"] is True
            assert check["verified_through"] == 91
        finally:
            server.terminate()
            _, errors = server.communicate(timeout=30)
        assert server.returncode == 0, errors.decode()[-2000:]
        assert (tmp_path / "signing-key.pem").exists()  # made once, before the processes
