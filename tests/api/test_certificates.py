"""Proof-carrying answers: a posture with `proofs=true`, and a certificate that
`chipledger verify --certificate` checks offline; an edited certificate and a log edited
behind the triggers (state changed, chain rehashed) both fail it. Both backends."""

import json
import subprocess
import sys
from pathlib import Path

from infra.merkle.certificate import evidence_positions, verify_certificate
from infra.merkle.checkpoint import open_checkpoint
from infra.merkle.note import Ed25519Verifier
from infra.merkle.verify import verify_inclusion
from tests.support.data import record_world
from tests.support.logs import rehash_from

CHIPLEDGER = str(Path(sys.executable).parent / "chipledger")
FIRM = "alibaba"  # its unlicensed H20 shipment of 2025-05-01
AT = {"as_of": "2025-06-01", "min_position": 10}


def verify(certificate, key, tmp_path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "certificate.json"
    path.write_text(json.dumps(certificate))
    return subprocess.run([CHIPLEDGER, "verify", "--certificate", str(path), "--public-key",
                           key], capture_output=True, text=True, timeout=60, check=False)


def certified(client, reader) -> dict:
    """The story's moment, once the read model has it (the certificate takes no min_position:
    wait on the posture first)."""
    assert client.get(f"/v1/firms/{FIRM}/posture", params=AT, headers=reader).status_code == 200
    return {"as_of": AT["as_of"]}


def public_key(client, headers) -> dict:
    return client.get("/v1/integrity/public-key", headers=headers).json()


def test_a_posture_with_proofs_carries_its_checkpoint_and_a_proof_per_evidence_event(
        client, writer, as_role):
    reader = as_role("reader")
    record_world(client, writer)
    known_at = client.get("/v1/integrity", headers=reader).json()["head_recorded_at"]
    answer = client.get(f"/v1/firms/{FIRM}/posture", headers=reader,
                        params={**AT, "proofs": "true", "known_at": known_at}).json()
    plain = client.get(f"/v1/firms/{FIRM}/posture", params={**AT, "known_at": known_at},
                       headers=reader).json()
    assert {k: v for k, v in answer.items() if k != "proofs"} == plain
    positions = evidence_positions(plain)
    assert positions, "the story's posture cites evidence"
    verifier = Ed25519Verifier.from_vkey(public_key(client, reader)["note_verifier_key"])
    checkpoint, _ = open_checkpoint(answer["proofs"]["checkpoint"], verifier.name, [verifier])
    assert checkpoint.size == answer["proofs"]["tree_size"] >= max(positions)
    assert [p["position"] for p in answer["proofs"]["inclusion"]] == positions
    events = {e["position"]: e for e in client.get("/v1/events", headers=reader).json()["events"]}
    for proof in answer["proofs"]["inclusion"]:
        assert proof["leaf_hash"] == events[proof["position"]]["leaf_hash"]
        verify_inclusion(proof["leaf_index"], checkpoint.size, bytes.fromhex(proof["leaf_hash"]),
                         [bytes.fromhex(h) for h in proof["hashes"]], checkpoint.root)


def test_a_certificate_verifies_offline_and_an_edited_one_does_not(
        client, writer, as_role, tmp_path):
    reader = as_role("reader")
    record_world(client, writer)
    certificate = client.get(f"/v1/firms/{FIRM}/posture/certificate", headers=reader,
                             params=certified(client, reader)).json()
    assert certificate["posture"]["firm_id"] == FIRM
    keys = public_key(client, reader)
    for key in (keys["note_verifier_key"], keys["public_key"], json.dumps(keys)):
        result = verify(certificate, key, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"ok: {len(certificate['evidence'])} evidence events" in result.stdout
    edited = json.loads(json.dumps(certificate))
    event = edited["evidence"][0]["event"]
    event["state"] = event["state"].replace("{", "{ ", 1)
    result = verify(edited, keys["note_verifier_key"], tmp_path)
    assert result.returncode == 1
    assert "MISMATCH" in result.stdout
    dropped = json.loads(json.dumps(certificate))
    dropped["evidence"] = dropped["evidence"][1:]
    assert not verify_certificate(dropped, keys["note_verifier_key"]).ok
    other = client.get("/v1/integrity/public-key", headers=reader).json()["public_key"]
    assert verify(certificate, other[:-4] + "AAA=", tmp_path).returncode == 1


def test_a_log_edited_behind_the_triggers_fails_the_certificate(
        client, writer, as_role, container, tmp_path):
    reader = as_role("reader")
    record_world(client, writer)
    before = client.get(f"/v1/firms/{FIRM}/posture/certificate", headers=reader,
                             params=certified(client, reader)).json()
    position = evidence_positions(before["posture"])[0]
    entry = container.store.entries(after=position - 1, limit=1)[0]
    rehash_from(container, position, entry.state, entry.state.replace(b"{", b"{ ", 1))
    assert client.post("/v1/integrity/verification", headers=as_role("auditor")).json()["ok"]
    after = client.get(f"/v1/firms/{FIRM}/posture/certificate", headers=reader,
                             params=certified(client, reader)).json()
    result = verify(after, public_key(client, reader)["note_verifier_key"], tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"position {position}" in result.stdout


def test_an_export_carries_the_tree_note_and_verify_file_checks_its_root(
        client, writer, as_role, tmp_path):
    record_world(client, writer)
    export = client.get("/v1/exports", headers=as_role("auditor")).text
    key = public_key(client, as_role("reader"))["public_key"]
    header = json.loads(export.split("\n", 1)[0])
    assert header["tree_checkpoint"].split("\n")[:2] == ["localhost/chipledger", "10"]
    path = tmp_path / "export.ndjson"

    def verify_file(text: str) -> subprocess.CompletedProcess[str]:
        path.write_text(text)
        return subprocess.run([CHIPLEDGER, "verify", "--file", str(path), "--public-key", key],
                              capture_output=True, text=True, timeout=60, check=False)

    assert verify_file(export).returncode == 0
    third = json.loads(export.split("\n")[3])
    wrong = export.replace(third["leaf_hash"], "0" * 64)
    result = verify_file(wrong)
    assert result.returncode == 1
    assert f"position {third['position']}: its leaf_hash is not the hash" in result.stdout
