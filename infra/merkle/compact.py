"""The compact range: the O(log n) state from which a tree grows and its root is computed.

A tree of `size` leaves is, left to right, one perfect subtree per set bit of `size`, largest
first (size 13 = 8 + 4 + 1). The compact range keeps only their root hashes. Appending a leaf
adds a subtree of one leaf and merges equal neighbours, as a binary counter carries: amortised
one node hash per leaf, and at most log2(n) for one. Each node it completes is returned, so the
integrator can store it (infra.merkle.store) for proofs later.
"""

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from infra.merkle.hashing import HASH_SIZE, NODE_PREFIX, fold_right
from infra.merkle.store import Node, NodeKey, NodeReader


@dataclass(frozen=True)
class CompactState:
    """What an integrator persists to resume: the size and the subtree roots, largest first."""

    size: int
    hashes: tuple[bytes, ...]


class CompactRange:
    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_state(size, hashes)
        self._size = size
        self._hashes = list(hashes)

    @classmethod
    def restore(cls, state: CompactState) -> "CompactRange":
        return cls(state.size, state.hashes)

    @classmethod
    def from_store(cls, store: NodeReader, size: int) -> "CompactRange":
        """The range at `size` from the stored nodes alone: nothing else needs to survive a
        crash but the size integrated (kept with the nodes, in their transaction)."""
        return cls(size, store.get_nodes(subtree_keys(0, size)))

    @property
    def size(self) -> int:
        return self._size

    def state(self) -> CompactState:
        return CompactState(self._size, tuple(self._hashes))

    def root(self) -> bytes:
        return fold_right(self._hashes)

    def append(self, leaf_hash: bytes) -> list[Node]:
        return self.extend((leaf_hash,))

    def extend(self, leaf_hashes: Iterable[bytes]) -> list[Node]:
        """Append leaves (their hashes); the nodes completed, leaves included, in order."""
        nodes: list[Node] = []
        add, hashes, sha256 = nodes.append, self._hashes, hashlib.sha256
        pop, push = hashes.pop, hashes.append
        index = self._size
        for value in leaf_hashes:
            add((0, index, value))
            level, carry = 0, index
            while carry & 1:  # a left sibling waits: merge, as a binary counter carries
                value = sha256(NODE_PREFIX + pop() + value).digest()
                level += 1
                carry >>= 1
                add((level, carry, value))
            push(value)
            index += 1
        self._size = index
        return nodes


def subtree_keys(start: int, end: int) -> list[NodeKey]:
    """The perfect subtrees that make up leaves [start, end), left to right, largest first.
    `start` must be a multiple of a power of two at least end - start, as it is for [0, n)
    and for every subtree an RFC 6962 proof names."""
    keys = []
    while start < end:
        level = (end - start).bit_length() - 1
        keys.append((level, start >> level))
        start += 1 << level
    return keys


def _check_state(size: int, hashes: Sequence[bytes]) -> None:
    if size < 0:
        raise ValueError(f"a tree cannot have {size} leaves")
    if len(hashes) != size.bit_count():
        raise ValueError(f"a range of size {size} has {size.bit_count()} subtree hashes, "
                         f"not {len(hashes)}")
    if any(len(value) != HASH_SIZE for value in hashes):
        raise ValueError(f"subtree hashes are {HASH_SIZE} bytes")
