"""The published proof vectors of transparency-dev/merkle (tests/infra/merkle/vectors/README.md):
every genuine proof verifies and every mutated one fails."""

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from infra.merkle.verify import ProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).parent / "vectors"


def probes(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    assert len(files) > 80, f"the {kind} vectors are missing"
    return [pytest.param(json.loads(f.read_text()), id=str(f.relative_to(VECTORS)))
            for f in files]


def raw(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def hashes(texts: list[str] | None) -> list[bytes]:
    return [raw(text) for text in texts or []]


@pytest.mark.parametrize("probe", probes("inclusion"))
def test_each_inclusion_vector_verifies_exactly_when_it_is_genuine(probe: Any) -> None:
    def verify() -> None:
        verify_inclusion(probe["leafIdx"], probe["treeSize"], raw(probe["leafHash"]),
                         hashes(probe["proof"]), raw(probe["root"]))

    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


@pytest.mark.parametrize("probe", probes("consistency"))
def test_each_consistency_vector_verifies_exactly_when_it_is_genuine(probe: Any) -> None:
    def verify() -> None:
        verify_consistency(probe["size1"], probe["size2"], hashes(probe["proof"]),
                           raw(probe["root1"]), raw(probe["root2"]))

    if probe["wantErr"]:
        with pytest.raises(ProofError):
            verify()
    else:
        verify()


def test_the_vectors_hold_genuine_proofs_and_mutations_of_them() -> None:
    wanted = [json.loads(f.read_text())["wantErr"] for f in VECTORS.rglob("*.json")]
    assert wanted.count(False) >= 10
    assert wanted.count(True) >= 150
