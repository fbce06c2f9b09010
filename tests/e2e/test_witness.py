"""`chipledger witness` against a served ledger: it cosigns a consistent checkpoint, the
ledger shows the cosignature and counts the checkpoint published by its policy, and a log
rewritten behind the triggers (one state edited, the chain rehashed, the tree rebuilt) is
refused with exit 1, nothing cosigned. Both backends."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from infra.merkle.cosignature import witnessed
from infra.merkle.integrator import Integrator
from infra.merkle.witness import WitnessState, new_witness_key, witness_key_text
from infra.settings import Settings
from tests.e2e.browser import serving
from tests.support.data import record_world
from tests.support.logs import append_in_commits, rehash_from, synthetic_lines, tamper

MERKLE_TABLES = ("chipledger_merkle_tiles", "chipledger_merkle_state",
                 "chipledger_merkle_checkpoints", "chipledger_merkle_cosignatures")

CHIPLEDGER = str(Path(sys.executable).parent / "chipledger")


def run(*args: str, api_key: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHIPLEDGER_API_KEY": api_key, "CHIPLEDGER_LOG_LEVEL": "warning"}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def witness_key(tmp_path: Path):
    signer = new_witness_key("witness.example.org")
    path = tmp_path / "witness.key"
    path.write_text(witness_key_text(signer))
    return signer, path


@pytest.fixture
def witnessed_ledger(database_url, tmp_path, witness_key):
    signer, _ = witness_key
    settings = Settings(database_url=database_url, log_format="console", poll_interval=0.05,
                        signing_key_file=str(tmp_path / "signing-key.pem"),
                        witness_keys=signer.vkey(), witness_quorum=1)
    container = bootstrap(settings)
    ring = KeyRing(container.store)
    keys = {role: ring.create(role)[1] for role in (Role.WRITER, Role.WITNESS, Role.READER)}
    try:
        with serving(container) as url:
            yield container, url, keys
    finally:
        container.close()


def witness(url: str, tmp_path: Path, key: Path, api_key: str):
    return run(CHIPLEDGER, "witness", "--ledger", url, "--state", str(tmp_path / "state.json"),
               "--key", str(key), api_key=api_key)


def test_a_witness_cosigns_consistent_checkpoints_and_refuses_a_rewritten_log(
        witnessed_ledger, witness_key, tmp_path, database_url):
    container, url, keys = witnessed_ledger
    signer, key_file = witness_key
    writer = {"Authorization": f"Bearer {keys[Role.WRITER]}"}
    reader = {"Authorization": f"Bearer {keys[Role.READER]}"}
    with httpx.Client(base_url=url) as http:
        record_world(http, writer)
        Integrator(container).catch_up()
        first = witness(url, tmp_path, key_file, keys[Role.WITNESS])
        assert first.returncode == 0, first.stderr
        assert "cosigned localhost/chipledger at size 10" in first.stdout
        answer = http.get("/v1/integrity/checkpoint", headers=reader)
        assert answer.headers["Chipledger-Published"] == "true"
        assert set(witnessed(answer.text, [signer.verifier])) == {"witness.example.org"}
        assert http.get("/v1/integrity/checkpoint", params={"published": "true"},
                        headers=reader).text == answer.text
        append_in_commits(container, synthetic_lines(30))
        Integrator(container).catch_up()
        second = witness(url, tmp_path, key_file, keys[Role.WITNESS])
        assert second.returncode == 0, second.stderr
        assert WitnessState.load(tmp_path / "state.json").size == 40
        # A forger behind the triggers: one state edited, the chain rehashed, the tree rebuilt
        entry = container.store.entries(after=4, limit=1)[0]
        rehash_from(container, 5, entry.state, entry.state.replace(b"{", b"{ ", 1))
        for table in MERKLE_TABLES:
            tamper(database_url, f"DELETE FROM {table}")
        append_in_commits(container, synthetic_lines(3))
        Integrator(container).catch_up()
        assert http.get("/v1/integrity/checkpoint", headers=reader).status_code == 200
        refused = witness(url, tmp_path, key_file, keys[Role.WITNESS])
    assert refused.returncode == 1, refused.stdout
    assert "REFUSED" in refused.stderr
    assert "not consistent" in refused.stderr
    assert "rewritten or forked" in refused.stderr
    assert WitnessState.load(tmp_path / "state.json").size == 40  # nothing accepted


def test_cosignatures_need_the_witness_role_and_a_trusted_key(witnessed_ledger, tmp_path):
    container, url, keys = witnessed_ledger
    stranger = new_witness_key("stranger.example.org")
    stranger_key = tmp_path / "stranger.key"
    stranger_key.write_text(witness_key_text(stranger))
    with httpx.Client(base_url=url) as http:
        record_world(http, {"Authorization": f"Bearer {keys[Role.WRITER]}"})
        Integrator(container).catch_up()
        note = http.get("/v1/integrity/checkpoint",
                        headers={"Authorization": f"Bearer {keys[Role.READER]}"}).text
        as_reader = http.post("/v1/integrity/cosignatures", content=note,
                              headers={"Authorization": f"Bearer {keys[Role.READER]}"})
        assert as_reader.status_code == 403
        untrusted = witness(url, tmp_path, stranger_key, keys[Role.WITNESS])
        assert untrusted.returncode == 1
        assert "422" in untrusted.stderr
        garbage = http.post("/v1/integrity/cosignatures", content=b"not a note\n",
                            headers={"Authorization": f"Bearer {keys[Role.WITNESS]}"})
        assert garbage.status_code == 422
        assert garbage.headers["content-type"] == "application/problem+json"
