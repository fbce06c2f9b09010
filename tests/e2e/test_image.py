"""The Dockerfile runs what the README runs, as a user other than root, and its HEALTHCHECK
asks a real server whether it is ready."""

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench.serving import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
CHIPLEDGER = Path(sys.executable).parent / "chipledger"


def instructions(name: str) -> list[str]:
    """The arguments of every `name` instruction, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines()
            if line.split(None, 1)[:1] == [name]]


def test_the_image_runs_as_a_user_other_than_root():
    users = instructions("USER")
    assert users, "the Dockerfile sets no USER"
    assert users[-1] not in {"root", "0"}
    assert any(f"useradd --system --uid 10001 --home-dir /var/lib/chipledger {users[-1]}"
               in run for run in instructions("RUN"))


def test_the_image_keeps_its_embedded_ledger_in_its_volume():
    env = dict(line.split("=", 1) for line in instructions("ENV"))
    volume = instructions("VOLUME")[-1]
    assert env["CHIPLEDGER_DATABASE_URL"] == f"sqlite:///{volume}/chipledger.db"
    assert instructions("WORKDIR")[-1] == volume


def test_the_image_ships_the_licence():
    assert "LICENSE" in instructions("COPY")[0].split()
    assert (ROOT / "LICENSE").read_text().split()[:3] == ["Apache", "License", "Version"]


def healthcheck_command(port: int) -> list[str]:
    """The HEALTHCHECK's exec form, pointed at `port` instead of the image's 8000."""
    (check,) = instructions("HEALTHCHECK")
    exec_form = json.loads(check[check.index("CMD") + len("CMD"):].strip())
    assert exec_form[0] == "python"
    return [sys.executable, *(part.replace(":8000/", f":{port}/") for part in exec_form[1:])]


@pytest.mark.slow
def test_the_healthcheck_fails_before_the_server_is_up_and_passes_once_it_is_ready(tmp_path):
    port = free_port()
    command = healthcheck_command(port)
    assert "/readyz" in shlex.join(command)
    # nothing listens yet: the check fails
    assert subprocess.run(command, capture_output=True, timeout=30).returncode != 0
    # the README's serve, on the embedded ledger
    env = {**os.environ, "CHIPLEDGER_DATABASE_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
           "CHIPLEDGER_SIGNING_KEY_FILE": str(tmp_path / "signing-key.pem"),
           "CHIPLEDGER_LOG_LEVEL": "warning"}
    server = subprocess.Popen([str(CHIPLEDGER), "serve", "--port", str(port)], env=env,
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}", server)
        # ready: the check passes
        assert subprocess.run(command, capture_output=True, timeout=30).returncode == 0
    finally:
        server.terminate()
        server.communicate(timeout=30)
