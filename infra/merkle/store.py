"""Where the tree's node hashes live: (level, index) -> hash, for perfect subtrees only.

The node at level `l` and index `i` is the root of the perfect subtree over leaves
[i * 2**l, (i + 1) * 2**l): level 0 holds the leaf hashes, level 1 the hashes of leaf pairs, and
so on. A node is stored once its subtree is complete and never changes after, which is what
makes the store append-only (a SQL table with primary key (level, index), or C2SP tiles: see
docs/merkle.md). Nodes over incomplete subtrees are never stored; proofs compute them from the
perfect subtrees they are made of.
"""

from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Protocol

NodeKey = tuple[int, int]  # (level, index)
# (level, index, hash): a plain tuple, because the integrator makes two of them per leaf.
Node = tuple[int, int, bytes]


class MissingNodeError(LookupError):
    """A node asked for is not stored: the tree has not been integrated that far."""

    def __init__(self, key: NodeKey) -> None:
        super().__init__(f"no node at level {key[0]}, index {key[1]}")
        self.key = key


class NodeConflictError(ValueError):
    """A node was stored again with another hash: the log under the tree has changed."""

    def __init__(self, key: NodeKey) -> None:
        super().__init__(f"node at level {key[0]}, index {key[1]} already has another hash")
        self.key = key


class NodeReader(Protocol):
    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        """The hashes at `keys`, in their order; MissingNodeError if one is not stored.
        Proof builders ask once per proof, with all the O(log n) keys they need."""
        ...


class NodeStore(NodeReader, Protocol):

    def put_nodes(self, nodes: Iterable[Node]) -> None:
        """Store `nodes`. Storing a node again with the same hash is a no-op (an integrator
        resumed after a crash rewrites what it had written); with another hash it raises
        NodeConflictError and stores none of them."""
        ...


_key_of = itemgetter(0, 1)
_hash_of = itemgetter(2)


class MemoryNodeStore:
    """A NodeStore in a dict, for tests and benchmarks."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, bytes] = {}

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        nodes = self.nodes
        try:
            return [nodes[key] for key in keys]
        except KeyError as missing:
            raise MissingNodeError(missing.args[0]) from None

    def put_nodes(self, nodes: Iterable[Node]) -> None:
        nodes = nodes if isinstance(nodes, list) else list(nodes)
        staged = dict(zip(map(_key_of, nodes), map(_hash_of, nodes), strict=True))
        known = self.nodes
        for key in staged.keys() & known.keys():
            if known[key] != staged[key]:
                raise NodeConflictError(key)
        known.update(staged)
