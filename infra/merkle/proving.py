"""Proofs as the API answers them: RFC 9162 inclusion and consistency proofs at any size up
to the integrated tree, in hex. Each reads the tree's state row and the O(log n) tiles its
hashes come from (full tiles are cached: they never change)."""

from typing import Any

from infra.merkle import proofs
from infra.merkle.proofs import ProofRequestError
from infra.merkle.tree_store import TreeState, TreeStore


class Prover:
    def __init__(self, tree: TreeStore) -> None:
        self.tree = tree

    def inclusion(self, position: int, tree_size: int,
                  state: TreeState | None = None) -> dict[str, Any]:
        """The audit path of the event at `position` (leaf `position - 1`)."""
        state = state or self._integrated("tree_size", tree_size)
        if position > tree_size:
            raise ProofRequestError("position", f"position {position} is not in a tree of "
                                    f"{tree_size} events")
        reader = self.tree.reader(state)
        index = position - 1
        [leaf] = reader.get_nodes([(0, index)])
        hashes = proofs.inclusion_proof(reader, index, tree_size)
        return {"position": position, "leaf_index": index, "tree_size": tree_size,
                "leaf_hash": leaf.hex(), "hashes": [h.hex() for h in hashes]}

    def consistency(self, from_size: int, to_size: int) -> dict[str, Any]:
        state = self._integrated("to_size", to_size)
        if from_size > to_size:
            raise ProofRequestError("from_size", f"from_size {from_size} is after to_size "
                                    f"{to_size}")
        hashes = proofs.consistency_proof(self.tree.reader(state), from_size, to_size)
        return {"from_size": from_size, "to_size": to_size, "hashes": [h.hex() for h in hashes]}

    def _integrated(self, field: str, size: int) -> TreeState:
        state = self.tree.state()
        if size > state.size:
            raise ProofRequestError(field, f"{field} {size} is beyond the {state.size} events "
                                    "integrated into the tree so far")
        return state
