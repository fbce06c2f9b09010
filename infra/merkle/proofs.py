"""Proofs built from stored node hashes (RFC 9162 sections 2.1.3.1 and 2.1.4.1).

Every hash in a proof is the root of a subtree [start, end) of the tree at the proof's size:
either a perfect subtree, stored as one node, or the subtree at the tree's right edge, which
is made of O(log n) perfect ones. Each builder works out the subtrees first, then reads all
their nodes in one `get_nodes` call: O(log n) lookups, one round trip.
"""

from collections.abc import Sequence

from infra.merkle.compact import subtree_keys
from infra.merkle.hashing import fold_right
from infra.merkle.store import NodeKey, NodeReader

Span = tuple[int, int]  # leaves [start, end)


class ProofRequestError(ValueError):
    """The sizes or index asked for do not make a proof; `field` names the one at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def root_at(store: NodeReader, size: int) -> bytes:
    """The root of the tree at `size`, any size up to the integrated one."""
    _check_size("tree_size", size)
    return fold_right(store.get_nodes(subtree_keys(0, size)))


def inclusion_proof(store: NodeReader, index: int, size: int) -> list[bytes]:
    """The audit path of leaf `index` (0-based) in the tree at `size`, leaf to root."""
    _check_size("tree_size", size)
    if not 0 <= index < size:
        raise ProofRequestError("leaf_index", f"leaf {index} is not in a tree of size {size}")
    return _hashes_of(store, inclusion_spans(index, size))


def consistency_proof(store: NodeReader, first: int, second: int) -> list[bytes]:
    """The proof that the tree at `first` is a prefix of the tree at `second`. Empty when
    first is 0 (the empty tree is a prefix of every tree) or equal to second."""
    _check_size("from_size", first)
    _check_size("to_size", second)
    if first > second:
        raise ProofRequestError("from_size", f"from_size {first} is after to_size {second}")
    return _hashes_of(store, consistency_spans(first, second))


def inclusion_spans(index: int, size: int) -> list[Span]:
    """The subtrees of PATH(index, D[size]): a sibling for each level below the one where the
    paths to `index` and to the last leaf part (the last of them may be cut short by the
    tree's edge), then the left siblings above it."""
    fork = (index ^ (size - 1)).bit_length()
    spans = []
    for level in range(fork):
        sibling = ((index >> level) ^ 1) << level
        spans.append((sibling, min(sibling + (1 << level), size)))
    for level in range(fork, size.bit_length()):
        if (index >> level) & 1:
            sibling = ((index >> level) - 1) << level
            spans.append((sibling, sibling + (1 << level)))
    return spans


def consistency_spans(first: int, second: int) -> list[Span]:
    """The subtrees of SUBPROOF(first, D[second], true), unrolled: descend from the whole tree
    toward the subtree that ends at `first`, naming the sibling left behind at each step."""
    if first in (0, second):
        return []
    start, end, whole, behind = 0, second, True, []
    while end != first:
        half = 1 << ((end - start - 1).bit_length() - 1)  # largest power of two < end - start
        if first <= start + half:
            behind.append((start + half, end))
            end = start + half
        else:
            behind.append((start, start + half))
            start, whole = start + half, False
    # the subtree ending at `first` is named only when the verifier cannot know it already
    return ([] if whole else [(start, end)]) + behind[::-1]


def _hashes_of(store: NodeReader, spans: Sequence[Span]) -> list[bytes]:
    keys: list[NodeKey] = []
    counts = []
    for start, end in spans:
        span_keys = subtree_keys(start, end)
        keys.extend(span_keys)
        counts.append(len(span_keys))
    nodes = store.get_nodes(keys)
    hashes, taken = [], 0
    for count in counts:
        hashes.append(fold_right(nodes[taken:taken + count]))
        taken += count
    return hashes


def _check_size(field: str, size: int) -> None:
    if size < 0:
        raise ProofRequestError(field, f"{field} {size} is negative")
