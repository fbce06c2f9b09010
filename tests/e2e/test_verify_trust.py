"""`chipledger verify` trusts a checkpoint's signature only by a key the auditor gives: the
service's public key in any form GET /v1/integrity/public-key shows it, or, by explicit choice,
the key embedded in the checkpoint. Offline (`--file`) and against the database (`--against`),
on SQLite and on PostgreSQL."""

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.cli import cli as chipledger
from infra.bundle import canonical_json
from infra.checkpoints import SigningKey
from infra.merkle.note import Ed25519Signer, parse_note, sign_note
from infra.seal import parse_time
from tests.support.logs import append_in_commits

Json = dict[str, Any]
# No database can be opened there: offline verification never opens one.
UNREACHABLE = "sqlite:////nonexistent-chipledger-dir/nowhere/ledger.db"


@dataclass(frozen=True)
class Signed:
    """A log of ten firms, its checkpoint, its export and the service's key as published."""

    bundle: Path
    checkpoint: Path
    published: Json
    database_url: str
    directory: Path


@pytest.fixture
def signed(container, client: TestClient, as_role, database_url, tmp_path) -> Signed:
    auditor = as_role("auditor")
    append_in_commits(container, [{"type": "firms", "body": {
        "id": f"firm-{n}", "name": f"Firm {n}", "hq_country": "SG"}} for n in range(1, 11)])
    checkpoint = client.post("/v1/integrity/checkpoints", headers=auditor)
    assert checkpoint.status_code == 201, checkpoint.text
    saved = tmp_path / "checkpoint.json"
    saved.write_text(checkpoint.text)
    bundle = tmp_path / "export.ndjson"
    bundle.write_bytes(client.get("/v1/exports", headers=auditor).content)
    published = client.get("/v1/integrity/public-key", headers=auditor).json()
    return Signed(bundle, saved, published, database_url, tmp_path)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


# Every form --public-key takes, made from GET /v1/integrity/public-key's answer.
FORMS: dict[str, Callable[[Json, Path], str]] = {
    "a PEM file": lambda key, d: write(d / "key.pem", key["public_key_pem"]),
    "the PEM text": lambda key, d: key["public_key_pem"],
    "a file of the raw key": lambda key, d: write(d / "key.b64", key["public_key"] + "\n"),
    "the raw key": lambda key, d: key["public_key"],
    "a file of the JSON answer": lambda key, d: write(d / "key.json", json.dumps(key)),
    "the JSON answer": lambda key, d: json.dumps(key),
}


def offline(*args: str) -> tuple[int, str]:
    """`chipledger verify ...` in this process, with no database reachable."""
    result = CliRunner().invoke(chipledger, ["verify", *args],
                                env={"CHIPLEDGER_DATABASE_URL": UNREACHABLE})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"crashed: {result.exception!r}\n{result.output}"
    return result.exit_code, result.output


def against_database(signed: Signed, *args: str) -> tuple[int, str]:
    """`chipledger verify --against CHECKPOINT ...` on the test's database."""
    result = CliRunner().invoke(
        chipledger, ["verify", "--against", str(signed.checkpoint), *args],
        env={"CHIPLEDGER_DATABASE_URL": signed.database_url, "CHIPLEDGER_LOG_LEVEL": "warning"})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"crashed: {result.exception!r}\n{result.output}"
    return result.exit_code, result.output


def stranger_key() -> Json:
    """A key that is not the service's, in the shape of GET /v1/integrity/public-key."""
    key = SigningKey(Ed25519PrivateKey.generate())
    return {"algorithm": "ed25519", "key_id": key.key_id,
            "public_key": base64.b64encode(key.public_raw).decode(),
            "public_key_pem": key.public_pem()}


def resigned(signed: Signed, key: SigningKey) -> Path:
    """The export with its checkpoint, and its tree's checkpoint note, signed again by `key`,
    as a forger would."""
    header, rest = signed.bundle.read_text().split("\n", 1)
    head = json.loads(header)
    claim = head["checkpoint"]
    head["checkpoint"] = key.sign(claim["position"], claim["hash"],
                                  parse_time(claim["recorded_at"])).to_json()
    text, _ = parse_note(head["tree_checkpoint"])
    head["tree_checkpoint"] = sign_note(text, Ed25519Signer(text.split("\n", 1)[0],
                                                            key.private))
    path = signed.directory / "resigned.ndjson"
    path.write_text(canonical_json(head) + "\n" + rest)
    return path


class TestWithoutAKey:
    def test_an_export_verifies_its_chain_but_its_checkpoint_is_unverified(self, signed):
        code, output = offline("--file", str(signed.bundle))
        assert code == 1, output
        assert output.startswith("UNVERIFIED: ")
        assert "holds 10 events, chain intact" in output
        assert signed.published["key_id"] in output
        assert "--public-key" in output
        assert "--trust-embedded-key" in output

    def test_the_log_extends_the_checkpoint_but_its_signature_is_unverified(self, signed,
                                                                            restore_logging):
        code, output = against_database(signed)
        assert code == 1, output
        assert output.startswith("UNVERIFIED: the log extends checkpoint 10")
        assert "--public-key" in output

    def test_trusting_the_embedded_key_is_said_and_passes(self, signed, restore_logging):
        code, output = offline("--file", str(signed.bundle), "--trust-embedded-key")
        assert code == 0, output
        assert f"signed checkpoint ok, by the key {signed.published['key_id']} embedded in it " \
            "(trusted: --trust-embedded-key)" in output
        code, output = against_database(signed, "--trust-embedded-key")
        assert code == 0, output
        assert "extends checkpoint 10, signed by the key" in output
        assert "(trusted: --trust-embedded-key)" in output

    def test_a_bundle_re_signed_by_a_forger_passes_only_when_its_key_is_trusted(self, signed):
        forger = SigningKey(Ed25519PrivateKey.generate())
        forged = resigned(signed, forger)
        # Without a key: unverified, naming the forger's key as the one it carries.
        code, output = offline("--file", str(forged))
        assert (code, output.startswith("UNVERIFIED: ")) == (1, True), output
        assert forger.key_id in output
        # With the service's key: the signature is not the service's.
        code, output = offline("--file", str(forged), "--public-key",
                               json.dumps(signed.published))
        assert code == 1, output
        assert "MISMATCH: the bundle's signed checkpoint does not verify" in output
        # Trusting the embedded key trusts the forger, and says whose key that was ...
        code, output = offline("--file", str(forged), "--trust-embedded-key")
        assert code == 0, output
        assert f"by the key {forger.key_id} embedded in it" in output
        # ... unless the auditor's earlier checkpoint was signed by another key.
        code, output = offline("--file", str(forged), "--trust-embedded-key", "--against",
                               str(signed.checkpoint))
        assert code == 1, output
        assert f"the earlier checkpoint is signed by key {signed.published['key_id']}, the " \
            f"bundle's by key {forger.key_id}" in output

    def test_an_export_without_a_checkpoint_is_unverified_whatever_is_trusted(
            self, client, as_role, tmp_path):
        empty = tmp_path / "empty.ndjson"
        empty.write_bytes(client.get("/v1/exports", headers=as_role("auditor")).content)
        for trust in ([], ["--trust-embedded-key"]):
            code, output = offline("--file", str(empty), *trust)
            assert code == 1, output
            assert "UNVERIFIED" in output
            assert "carries no signed checkpoint" in output


class TestThePublicKeyInEveryForm:
    @pytest.mark.parametrize("form", FORMS)
    def test_an_export_verifies_offline(self, signed, form):
        key = FORMS[form](signed.published, signed.directory)
        code, output = offline("--file", str(signed.bundle), "--public-key", key)
        assert code == 0, output
        assert f"holds 10 events, chain intact, signed checkpoint ok, by the trusted key " \
            f"{signed.published['key_id']}" in output
        code, output = offline("--file", str(signed.bundle), "--against",
                               str(signed.checkpoint), "--public-key", key)
        assert code == 0, output

    @pytest.mark.parametrize("form", FORMS)
    def test_the_log_extends_the_checkpoint(self, signed, form, restore_logging):
        key = FORMS[form](signed.published, signed.directory)
        code, output = against_database(signed, "--public-key", key)
        assert code == 0, output
        assert f"extends checkpoint 10, signed by the trusted key " \
            f"{signed.published['key_id']}" in output

    @pytest.mark.parametrize("form", FORMS)
    def test_a_key_that_is_not_the_services_is_a_mismatch(self, signed, form, restore_logging):
        key = FORMS[form](stranger_key(), signed.directory)
        code, output = offline("--file", str(signed.bundle), "--public-key", key)
        assert code == 1, output
        assert "MISMATCH: the bundle's signed checkpoint does not verify" in output
        code, output = against_database(signed, "--public-key", key)
        assert code == 1, output
        assert "MISMATCH against checkpoint at position 10: the checkpoint's signature does " \
            "not verify" in output


def ec_public_pem() -> str:
    return ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def answer_with(**changes: Any) -> Callable[[Json], str]:
    return lambda key: json.dumps({**key, **changes})


# What --public-key refuses (exit 2, one line naming the flag), and why.
NOT_KEYS: dict[str, tuple[Callable[[Json], str], str]] = {
    "a file name that does not exist": (lambda key: "service.pub.pem", "neither a file nor a key"),
    "31 bytes": (lambda key: base64.b64encode(b"k" * 31).decode(), "is 32 bytes, this is 31"),
    "a PEM that is not a key": (lambda key: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END "
                                "PUBLIC KEY-----", "not a PEM public key"),
    "a P-256 key": (lambda key: ec_public_pem(), "not an Ed25519 public key"),
    "JSON without a key": (lambda key: json.dumps({"key_id": key["key_id"]}),
                           "JSON without public_key or public_key_pem"),
    "JSON that is not JSON": (lambda key: "{not json", "Expecting property name"),
    "JSON of another algorithm": (answer_with(algorithm="rsa"), "its algorithm is 'rsa'"),
    "JSON whose two forms differ": (
        lambda key: json.dumps({**key, "public_key_pem": stranger_key()["public_key_pem"]}),
        "its public_key and public_key_pem are different keys"),
    "JSON whose key id is another key's": (answer_with(key_id="0123456789abcdef"),
                                           "its key_id '0123456789abcdef' is not the id"),
}


class TestWhatIsNotAKey:
    @pytest.mark.parametrize("case", NOT_KEYS)
    def test_is_refused_before_anything_is_verified(self, signed, case):
        make, reason = NOT_KEYS[case]
        for mode in (["--file", str(signed.bundle)], ["--against", str(signed.checkpoint)]):
            code, output = offline(*mode, "--public-key", make(signed.published))
            assert code == 2, (mode, output)
            assert output.startswith("--public-key: not an Ed25519 public key: "), output
            assert reason in output
            assert output.strip().count("\n") == 0, output

    def test_a_key_and_trusting_the_embedded_one_are_not_both_given(self, signed):
        code, output = offline("--file", str(signed.bundle), "--trust-embedded-key",
                               "--public-key", signed.published["public_key"])
        assert code == 2, output
        assert "give --public-key or --trust-embedded-key, not both" in output
