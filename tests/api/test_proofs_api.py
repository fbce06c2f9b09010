"""The tree through the HTTP API, as an outside verifier sees it: the C2SP checkpoint verifies
with the note verifier key, every event's leaf_hash is in it by its inclusion proof, two
checkpoints are consistent, and bad sizes are 422s naming the field. Both backends."""

import random

import pytest

from infra.merkle.checkpoint import open_checkpoint
from infra.merkle.hashing import leaf_hash
from infra.merkle.integrator import Integrator
from infra.merkle.leaves import leaf_bytes
from infra.merkle.note import Ed25519Verifier
from infra.merkle.proofs import ProofRequestError
from infra.merkle.proving import Prover
from infra.merkle.tree_store import TreeStore
from infra.merkle.verify import verify_consistency, verify_inclusion
from tests.infra.merkle import rfc6962
from tests.support.data import record_world
from tests.support.logs import append_in_commits, rehash_from, synthetic_lines, tamper


def checkpoint_of(client, headers):
    key = client.get("/v1/integrity/public-key", headers=headers).json()["note_verifier_key"]
    response = client.get("/v1/integrity/checkpoint", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    verifier = Ed25519Verifier.from_vkey(key)
    checkpoint, _ = open_checkpoint(response.text, verifier.name, [verifier])
    return checkpoint


@pytest.fixture
def reader(client, writer, as_role, container):
    """The story recorded and integrated into the tree: a reader's headers."""
    record_world(client, writer)
    Integrator(container).catch_up()
    return as_role("reader")


def test_every_event_is_in_the_signed_checkpoint_by_its_proof(client, reader, container):
    checkpoint = checkpoint_of(client, reader)
    assert checkpoint.origin == "localhost/chipledger"
    events = client.get("/v1/events", headers=reader).json()["events"]
    assert checkpoint.size == len(events) == 10
    leaves = tuple(leaf_bytes(e) for e in container.store.iter_entries())
    assert checkpoint.root == rfc6962.mth(leaves)
    for event in events:
        assert event["leaf_hash"] == leaf_hash(leaves[event["position"] - 1]).hex()
        proof = client.get("/v1/integrity/proofs/inclusion", headers=reader, params={
            "position": event["position"], "tree_size": checkpoint.size}).json()
        assert proof["leaf_index"] == event["position"] - 1
        assert proof["leaf_hash"] == event["leaf_hash"]
        verify_inclusion(proof["leaf_index"], proof["tree_size"],
                         bytes.fromhex(proof["leaf_hash"]),
                         [bytes.fromhex(h) for h in proof["hashes"]], checkpoint.root)


def test_a_later_checkpoint_is_consistent_with_an_earlier_one(client, reader, container):
    first = checkpoint_of(client, reader)
    append_in_commits(container, synthetic_lines(40))
    Integrator(container).catch_up()
    second = checkpoint_of(client, reader)
    assert (first.size, second.size) == (10, 50)
    proof = client.get("/v1/integrity/proofs/consistency", headers=reader,
                       params={"from_size": 10, "to_size": 50}).json()
    assert (proof["from_size"], proof["to_size"]) == (10, 50)
    verify_consistency(10, 50, [bytes.fromhex(h) for h in proof["hashes"]], first.root,
                       second.root)


@pytest.mark.parametrize(("path", "params", "field"), [
    ("inclusion", {"position": 1, "tree_size": 11}, "query.tree_size"),
    ("inclusion", {"position": 9, "tree_size": 8}, "query.position"),
    ("inclusion", {"position": 0, "tree_size": 8}, "query.position"),
    ("inclusion", {"position": 1, "tree_size": "x"}, "query.tree_size"),
    ("consistency", {"from_size": 4, "to_size": 11}, "query.to_size"),
    ("consistency", {"from_size": 9, "to_size": 8}, "query.from_size"),
    ("consistency", {"from_size": 0, "to_size": 8}, "query.from_size"),
    ("consistency", {"from_size": 1, "to_size": 2**70}, "query.to_size"),
])
def test_sizes_beyond_the_tree_or_out_of_order_are_422s_naming_the_field(
        client, reader, path, params, field):
    response = client.get(f"/v1/integrity/proofs/{path}", params=params, headers=reader)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]


def test_proofs_at_every_size_to_300_are_the_reference_proofs(container):
    append_in_commits(container, synthetic_lines(300))
    Integrator(container, page=97).catch_up()
    leaves = tuple(leaf_bytes(e) for e in container.store.iter_entries())
    prover = Prover(TreeStore(container.store.dialect))
    rng = random.Random(6962)
    for size in range(1, 301):
        position = rng.randint(1, size)
        answer = prover.inclusion(position, size)
        assert answer["hashes"] == [h.hex() for h in rfc6962.path(position - 1, leaves[:size])]
        first = rng.randint(1, size)
        assert prover.consistency(first, size)["hashes"] == \
            [h.hex() for h in rfc6962.proof(first, leaves[:size])]
    with pytest.raises(ProofRequestError):
        prover.inclusion(1, 301)


def test_a_tree_rebuilt_over_a_rewritten_log_is_never_signed(client, reader, container,
                                                            database_url):
    signed = checkpoint_of(client, reader)
    entry = container.store.entries(after=2, limit=1)[0]
    rehash_from(container, 3, entry.state, entry.state.replace(b"{", b"{ ", 1))
    for table in ("chipledger_merkle_tiles", "chipledger_merkle_state"):  # a forger's rebuild
        tamper(database_url, f"DELETE FROM {table}")
    append_in_commits(container, synthetic_lines(5))
    Integrator(container).catch_up()
    response = client.get("/v1/integrity/checkpoint", headers=reader)
    assert response.status_code == 409, response.text
    assert "rewritten" in response.json()["detail"]
    assert [a.key for a in container.alarms.active("integrity")] == ["merkle-checkpoint"]
    assert TreeStore(container.store.dialect).latest_signed().size == signed.size
