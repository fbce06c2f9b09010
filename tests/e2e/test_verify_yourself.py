"""docs/verify-it-yourself.py, run as an outside auditor would, against a served ledger: it
verifies the signature, an event's inclusion and, the second time, consistency with the
checkpoint it kept; a forged checkpoint key makes it fail."""

import os
import subprocess
import sys
from pathlib import Path

import httpx

from infra.keys import KeyRing, Role
from infra.merkle.integrator import Integrator
from tests.e2e.browser import serving
from tests.support.data import record_world
from tests.support.logs import append_in_commits, synthetic_lines

SCRIPT = str(Path(__file__).parents[2] / "docs" / "verify-it-yourself.py")



def run(*args: str, api_key: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPLEDGER_API_KEY": api_key, "CHIPLEDGER_LOG_LEVEL": "warning"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_the_standalone_script_verifies_a_served_ledger(container, tmp_path):
    ring = KeyRing(container.store)
    writer, reader = ring.create(Role.WRITER)[1], ring.create(Role.READER)[1]
    state = str(tmp_path / "kept.json")
    with serving(container) as url, httpx.Client(base_url=url) as http:
        record_world(http, {"Authorization": f"Bearer {writer}"})
        Integrator(container).catch_up()
        vkey = http.get("/v1/integrity/public-key", headers={
            "Authorization": f"Bearer {reader}"}).json()["note_verifier_key"]
        first = run(sys.executable, SCRIPT, url, reader, vkey, "3", state)
        assert first.returncode == 0, first.stderr
        assert "10 events, signature ok" in first.stdout
        assert "event 3 (FirmRegistered) is in it" in first.stdout
        append_in_commits(container, synthetic_lines(20))
        Integrator(container).catch_up()
        second = run(sys.executable, SCRIPT, url, reader, vkey, "25", state)
        assert second.returncode == 0, second.stderr
        assert "consistent with the checkpoint of 10 events" in second.stdout
        name, key_id, key = vkey.split("+", 2)
        other = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]  # another key
        forged = run(sys.executable, SCRIPT, url, reader, f"{name}+{key_id}+{other}", "3")
        assert forged.returncode == 1
        assert "FAILED" in forged.stderr or "InvalidSignature" in forged.stderr
