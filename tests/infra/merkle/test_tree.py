"""The tree, its compact range and its proofs agree with RFC 6962 written out plainly
(tests/infra/merkle/rfc6962.py), at every size up to 300 and at random sizes beyond."""

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.merkle.compact import CompactRange, CompactState
from infra.merkle.hashing import EMPTY_ROOT, leaf_hash
from infra.merkle.proofs import ProofRequestError, consistency_proof, inclusion_proof, root_at
from infra.merkle.store import MemoryNodeStore, MissingNodeError, NodeConflictError, NodeKey
from infra.merkle.tree import Tree
from infra.merkle.verify import ProofError, verify_consistency, verify_inclusion
from tests.infra.merkle import rfc6962

SOME = settings(max_examples=200, deadline=None)
LEAVES = tuple(f"event {n}".encode() for n in range(5000))
SMALL = 300


def tree_of(leaves: Sequence[bytes]) -> Tree:
    tree = Tree(MemoryNodeStore())
    tree.append_leaves(leaves)
    return tree


@pytest.fixture(scope="module")
def small_tree() -> Tree:
    return tree_of(LEAVES[:SMALL])


@pytest.fixture(scope="module")
def large_tree() -> Tree:
    return tree_of(LEAVES)


def test_the_empty_tree_has_the_hash_of_nothing_as_its_root() -> None:
    assert Tree(MemoryNodeStore()).root() == EMPTY_ROOT == rfc6962.mth(())
    assert root_at(MemoryNodeStore(), 0) == EMPTY_ROOT


def test_the_compact_range_has_the_rfc_root_after_every_leaf_up_to_300() -> None:
    tree = Tree(MemoryNodeStore())
    for size in range(1, SMALL + 1):
        tree.append_leaves([LEAVES[size - 1]])
        assert tree.root() == rfc6962.mth(LEAVES[:size]), size


def test_the_root_of_every_earlier_size_is_read_back_from_the_store(small_tree: Tree) -> None:
    for size in range(SMALL + 1):
        assert small_tree.root_at(size) == rfc6962.mth(LEAVES[:size]), size


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_every_inclusion_proof_is_the_rfc_path_and_verifies(small_tree: Tree, size: int) -> None:
    root = rfc6962.mth(LEAVES[:size])
    for index in range(size):
        proof = small_tree.inclusion_proof(index, size)
        assert proof == rfc6962.path(index, LEAVES[:size]), index
        verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, root)


@pytest.mark.parametrize("size", range(1, SMALL + 1))
def test_every_consistency_proof_is_the_rfc_proof_and_verifies(
    small_tree: Tree, size: int
) -> None:
    root = rfc6962.mth(LEAVES[:size])
    for first in range(1, size + 1):
        proof = small_tree.consistency_proof(first, size)
        assert proof == rfc6962.proof(first, LEAVES[:size]), first
        verify_consistency(first, size, proof, rfc6962.mth(LEAVES[:first]), root)


@st.composite
def index_and_size(draw: st.DrawFn, most: int = len(LEAVES)) -> tuple[int, int]:
    size = draw(st.integers(1, most))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn, most: int = len(LEAVES)) -> tuple[int, int]:
    second = draw(st.integers(1, most))
    return draw(st.integers(1, second)), second


@SOME
@given(index_and_size())
def test_inclusion_proofs_in_larger_trees_are_the_rfc_path(
    large_tree: Tree, pair: tuple[int, int]
) -> None:
    index, size = pair
    proof = large_tree.inclusion_proof(index, size)
    assert proof == rfc6962.path(index, LEAVES[:size])
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, rfc6962.mth(LEAVES[:size]))


@SOME
@given(two_sizes())
def test_consistency_proofs_in_larger_trees_are_the_rfc_proof(
    large_tree: Tree, pair: tuple[int, int]
) -> None:
    first, second = pair
    proof = large_tree.consistency_proof(first, second)
    assert proof == rfc6962.proof(first, LEAVES[:second])
    verify_consistency(first, second, proof, rfc6962.mth(LEAVES[:first]),
                       rfc6962.mth(LEAVES[:second]))


@SOME
@given(st.lists(st.integers(0, 70), max_size=12))
def test_leaves_appended_in_batches_store_what_one_at_a_time_stores(batches: list[int]) -> None:
    one_by_one, batched = Tree(MemoryNodeStore()), Tree(MemoryNodeStore())
    done = 0
    for count in batches:
        batched.append_leaves(LEAVES[done:done + count])
        for leaf in LEAVES[done:done + count]:
            one_by_one.append_leaves([leaf])
        done += count
        assert batched.root() == one_by_one.root() == rfc6962.mth(LEAVES[:done])
    assert _nodes(batched) == _nodes(one_by_one)


@SOME
@given(st.integers(0, 400), st.integers(1, 200), st.data())
def test_an_integrator_that_crashed_mid_batch_resumes_to_the_same_tree(
    before: int, batch: int, data: st.DataObject
) -> None:
    store = MemoryNodeStore()
    # it integrated `before` leaves and recorded that size with their nodes
    tree = Tree(store)
    tree.append_leaves(LEAVES[:before])
    saved = tree.compact.state()
    # the next batch died with only some of its nodes written, and its size not recorded
    pending = CompactRange.restore(saved).extend(map(leaf_hash, LEAVES[before:before + batch]))
    store.put_nodes(pending[:data.draw(st.integers(0, len(pending)))])
    # a new process resumes at the recorded size, from the store alone or from the state
    end = before + batch + 50
    from_store, from_state = Tree.resume(store, before), Tree(store, CompactRange.restore(saved))
    for resumed in (from_store, from_state):
        resumed.append_leaves(LEAVES[before:end])
        assert resumed.root() == rfc6962.mth(LEAVES[:end])
    # and the store holds what a tree that never stopped holds
    assert _nodes(from_state) == _nodes(tree_of(LEAVES[:end]))


def test_a_resumed_integrator_refuses_a_log_that_changed_under_it() -> None:
    tree = tree_of(LEAVES[:10])
    resumed = Tree.resume(tree.store, 8)
    with pytest.raises(NodeConflictError, match="level 0, index 8"):
        resumed.append_leaves([b"not the ninth event", LEAVES[9]])
    assert resumed.size == 8  # the compact range stays at what the store holds
    resumed.append_leaves(LEAVES[8:10])
    assert resumed.root() == tree.root()


def test_a_compact_state_must_hold_one_hash_per_subtree() -> None:
    state = tree_of(LEAVES[:13]).compact.state()
    assert len(state.hashes) == 3  # 13 = 8 + 4 + 1
    with pytest.raises(ValueError, match="3 subtree hashes, not 2"):
        CompactRange.restore(CompactState(13, state.hashes[:2]))
    with pytest.raises(ValueError, match="32 bytes"):
        CompactRange(1, [b"short"])


def test_proofs_beyond_the_integrated_tree_are_refused_naming_the_size(
    small_tree: Tree,
) -> None:
    with pytest.raises(ProofRequestError, match="beyond the 300 leaves") as refused:
        small_tree.inclusion_proof(3, SMALL + 1)
    assert refused.value.field == "tree_size"
    with pytest.raises(ProofRequestError) as refused:
        small_tree.consistency_proof(10, SMALL + 1)
    assert refused.value.field == "to_size"
    with pytest.raises(MissingNodeError):
        inclusion_proof(small_tree.store, 3, SMALL + 1)


def test_proofs_of_sizes_out_of_order_are_refused_naming_the_field(small_tree: Tree) -> None:
    with pytest.raises(ProofRequestError) as refused:
        small_tree.inclusion_proof(5, 5)
    assert refused.value.field == "leaf_index"
    with pytest.raises(ProofRequestError) as refused:
        small_tree.consistency_proof(6, 5)
    assert refused.value.field == "from_size"
    with pytest.raises(ProofRequestError) as refused:
        consistency_proof(small_tree.store, -1, 5)
    assert refused.value.field == "from_size"


def test_consistency_from_the_empty_tree_or_to_the_same_size_needs_no_hashes(
    small_tree: Tree,
) -> None:
    assert small_tree.consistency_proof(0, 17) == []
    assert small_tree.consistency_proof(17, 17) == []


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        self.reads.append(len(keys))
        return super().get_nodes(keys)


@pytest.fixture(scope="module")
def counted_tree() -> Tree:
    tree = Tree(CountingStore())
    tree.append_leaf_hashes(rfc6962.sha256(n.to_bytes(4, "big")) for n in range(77_777))
    return tree


@SOME
@given(index_and_size(most=77_777), two_sizes(most=77_777))
def test_each_proof_is_one_read_of_logarithmically_many_nodes(
    counted_tree: Tree, inclusion: tuple[int, int], consistency: tuple[int, int]
) -> None:
    store = counted_tree.store
    assert isinstance(store, CountingStore)
    store.reads.clear()
    counted_tree.inclusion_proof(*inclusion)
    counted_tree.consistency_proof(*consistency)
    counted_tree.root_at(consistency[0])
    levels = 77_777 .bit_length()
    assert len(store.reads) == 3
    assert all(keys <= 2 * levels for keys in store.reads), store.reads


@SOME
@given(index_and_size(most=SMALL - 1), st.data())
def test_an_inclusion_proof_tampered_anyhow_fails(
    small_tree: Tree, pair: tuple[int, int], data: st.DataObject
) -> None:
    index, size = pair
    proof, root = small_tree.inclusion_proof(index, size), small_tree.root_at(size)
    leaf = leaf_hash(LEAVES[index])
    tampered = data.draw(st.sampled_from([
        (index, size + 1, leaf, proof, small_tree.root_at(size + 1)),
        (index, size, leaf_hash(b"another event"), proof, root),
        (index, size, leaf, [*proof, leaf], root), (index, size, leaf, proof[:-1], root),
        (index, size, leaf, [_flip(h, data) for h in proof], root),
        (index, size, leaf, proof, rfc6962.sha256(b"another root")),
        (index ^ 1 if index ^ 1 < size else size, size, leaf, proof, root),
    ]))
    if tampered == (index, size, leaf, proof, root):
        return  # the one mutation that changes nothing: an empty proof flipped or cut
    with pytest.raises(ProofError):
        verify_inclusion(*tampered)


@SOME
@given(two_sizes(most=SMALL - 1), st.data())
def test_a_consistency_proof_tampered_anyhow_fails(
    small_tree: Tree, pair: tuple[int, int], data: st.DataObject
) -> None:
    first, second = pair
    proof = small_tree.consistency_proof(first, second)
    roots = small_tree.root_at(first), small_tree.root_at(second)
    other = rfc6962.sha256(b"another root")
    tampered = data.draw(st.sampled_from([
        (first, second, proof, other, roots[1]), (first, second, proof, roots[0], other),
        (first, second, [*proof, other], *roots), (first, second, proof[:-1], *roots),
        (first, second, [_flip(h, data) for h in proof], *roots),
        (first, second + 1, proof, roots[0], small_tree.root_at(second + 1)),
        (second, first, proof, roots[1], roots[0]),
    ]))
    if tampered == (first, second, proof, *roots):
        return  # the one mutation that changes nothing: an empty proof flipped or cut
    with pytest.raises(ProofError):
        verify_consistency(*tampered)


def _flip(value: bytes, data: st.DataObject) -> bytes:
    at = data.draw(st.integers(0, len(value) * 8 - 1))
    return (int.from_bytes(value) ^ (1 << at)).to_bytes(len(value))


def _nodes(tree: Tree) -> dict[NodeKey, bytes]:
    assert isinstance(tree.store, MemoryNodeStore)
    return tree.store.nodes
