"""A tree being integrated: its compact range, and its node store for proofs."""

import hashlib
from collections.abc import Iterable

from infra.merkle import proofs
from infra.merkle.compact import CompactRange
from infra.merkle.hashing import LEAF_PREFIX
from infra.merkle.store import NodeStore


class Tree:
    """Integrates leaves in order and answers proofs for any size up to the integrated one.
    Nodes reach the store before the size moves past them: a tree resumed with `resume` at
    the last size whose nodes were stored carries on as if it had never stopped."""

    def __init__(self, store: NodeStore, compact: CompactRange | None = None) -> None:
        self.store = store
        self.compact = compact or CompactRange()

    @classmethod
    def resume(cls, store: NodeStore, size: int) -> "Tree":
        return cls(store, CompactRange.from_store(store, size))

    @property
    def size(self) -> int:
        return self.compact.size

    def root(self) -> bytes:
        return self.compact.root()

    def append_leaves(self, leaves: Iterable[bytes]) -> None:
        """Integrate leaves (their bytes, not their hashes), as one batch."""
        sha256 = hashlib.sha256
        self.append_leaf_hashes([sha256(LEAF_PREFIX + leaf).digest() for leaf in leaves])

    def append_leaf_hashes(self, leaf_hashes: Iterable[bytes]) -> None:
        before = self.compact.state()
        nodes = self.compact.extend(leaf_hashes)
        try:
            self.store.put_nodes(nodes)
        except BaseException:
            self.compact = CompactRange.restore(before)  # what the store holds, no more
            raise

    def root_at(self, size: int) -> bytes:
        self._check_integrated("tree_size", size)
        return proofs.root_at(self.store, size)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_integrated("tree_size", size)
        return proofs.inclusion_proof(self.store, index, size)

    def consistency_proof(self, first: int, second: int) -> list[bytes]:
        self._check_integrated("to_size", second)
        return proofs.consistency_proof(self.store, first, second)

    def _check_integrated(self, field: str, size: int) -> None:
        if size > self.size:
            raise proofs.ProofRequestError(
                field, f"{field} {size} is beyond the {self.size} leaves integrated")
