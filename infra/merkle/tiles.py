"""The tree kept as C2SP tiles (c2sp.org/tlog-tiles, height 8), grown a batch at a time.

Tile `(L, t)` holds the 256 node hashes at tree level `8L`, indices `256t` to `256t + 255`:
tile level 0 holds leaf hashes, tile level 1 the roots of 256-leaf subtrees, and so on. Only
full tiles are stored (immutable rows); the right edge of the tree, the `Edge`, is what is
not in them yet: the compact range (one subtree root per set bit of the size, as
infra.merkle.compact keeps it) and, per tile level, the hashes past its last full tile.
Every node a proof names is complete, so it is in a full tile or in the edge; one at a level
that is not a multiple of 8 is folded from the at most 128 hashes beneath it in one tile.

Growing works level by level over a whole batch (a list comprehension of node hashes per
level, not a carry loop per leaf): about one node hash per leaf, a tile written per 256.
"""

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from infra.merkle.hashing import HASH_SIZE, NODE_PREFIX, fold_right
from infra.merkle.store import MissingNodeError, NodeKey

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
TileKey = tuple[int, int]  # (tile level, tile index)
Tile = tuple[int, int, bytes]  # (tile level, tile index, 256 hashes of 32 bytes)
FetchTiles = Callable[[Sequence[TileKey]], dict[TileKey, bytes]]


def pair_up(row: Sequence[bytes]) -> list[bytes]:
    """The parents of adjacent pairs (an odd last one has none yet)."""
    it, sha256, prefix = iter(row), hashlib.sha256, NODE_PREFIX
    return [sha256(prefix + left + right).digest() for left, right in zip(it, it, strict=False)]


def perfect_root(row: Sequence[bytes]) -> bytes:
    """The root of a perfect subtree from its 2**k bottom hashes."""
    while len(row) > 1:
        row = pair_up(row)
    return row[0]


def tile_levels(size: int) -> int:
    """How many tile levels a tree of `size` leaves has nodes in."""
    return (max(size.bit_length() - 1, 0)) // TILE_HEIGHT + 1 if size else 0


@dataclass
class Edge:
    """The part of the tree at `size` not in full tiles (see the module's text)."""

    size: int = 0
    compact: list[bytes] = field(default_factory=list)  # largest subtree first
    partial: list[list[bytes]] = field(default_factory=list)  # per tile level

    def root(self) -> bytes:
        return fold_right(self.compact)

    def to_bytes(self) -> bytes:
        return b"".join([*self.compact, *(h for row in self.partial for h in row)])

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> "Edge":
        """The edge written by to_bytes: how many hashes of each part follows from `size`."""
        hashes = [blob[i:i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        counts = [(size >> (TILE_HEIGHT * level)) % TILE_WIDTH
                  for level in range(tile_levels(size))]
        if len(hashes) != size.bit_count() + sum(counts) or len(blob) % HASH_SIZE:
            raise ValueError(f"the tree's edge does not fit a tree of size {size}")
        compact, rest = hashes[:size.bit_count()], hashes[size.bit_count():]
        partial = []
        for count in counts:
            partial.append(rest[:count])
            rest = rest[count:]
        return cls(size, compact, partial)

    def grow(self, leaf_hashes: list[bytes]) -> list[Tile]:
        """Append leaves (their hashes); the tiles they fill, in order."""
        size, new_size = self.size, self.size + len(leaf_hashes)
        pending = self._pending()
        kept: dict[int, bytes] = {}
        tiles: list[Tile] = []
        row = leaf_hashes
        for level in range(new_size.bit_length()):
            if level % TILE_HEIGHT == 0:
                tiles += self._fill(level // TILE_HEIGHT, size >> level, row)
            if (size >> level) & 1:  # a left sibling waits at this level
                row = [pending[level], *row]
            if len(row) & 1:
                kept[level] = row[-1]
            row = pair_up(row)
        self.size = new_size
        self.compact = [kept[level] for level in sorted(kept, reverse=True)]
        return tiles

    def _pending(self) -> dict[int, bytes]:
        levels = [level for level in range(self.size.bit_length() - 1, -1, -1)
                  if (self.size >> level) & 1]
        return dict(zip(levels, self.compact, strict=True))

    def _fill(self, tile_level: int, count: int, row: list[bytes]) -> list[Tile]:
        """Add the level's new nodes (`count` were there before) to its partial tile."""
        while len(self.partial) <= tile_level:
            self.partial.append([])
        partial = self.partial[tile_level]
        partial += row
        tiles, index = [], count // TILE_WIDTH
        while len(partial) >= TILE_WIDTH:
            tiles.append((tile_level, index, b"".join(partial[:TILE_WIDTH])))
            del partial[:TILE_WIDTH]
            index += 1
        return tiles


class TileReader:
    """A NodeReader over full tiles (fetched) and an edge: every complete node of the tree
    at the edge's size, for proofs at that size or any before it."""

    def __init__(self, edge: Edge, fetch: FetchTiles) -> None:
        self.edge, self.fetch = edge, fetch

    def get_nodes(self, keys: Sequence[NodeKey]) -> list[bytes]:
        places = [_place(key) for key in keys]
        tiles = self._tiles({place[0] for place in places})
        return [_node(tiles, key, place) for key, place in zip(keys, places, strict=True)]

    def _tiles(self, wanted: Iterable[TileKey]) -> dict[TileKey, bytes]:
        full, found = [], {}
        for tile_level, index in wanted:
            filled = (self.edge.size >> (TILE_HEIGHT * tile_level)) // TILE_WIDTH
            if index < filled:
                full.append((tile_level, index))
            elif index == filled and tile_level < len(self.edge.partial):
                found[tile_level, index] = b"".join(self.edge.partial[tile_level])
        return found | (self.fetch(sorted(full)) if full else {})


def _place(key: NodeKey) -> tuple[TileKey, int, int]:
    """The tile a node is folded from, the first of its hashes there and how many."""
    level, index = key
    tile_level, height = divmod(level, TILE_HEIGHT)
    first = index << height
    return (tile_level, first // TILE_WIDTH), first % TILE_WIDTH, 1 << height


def _node(tiles: dict[TileKey, bytes], key: NodeKey, place: tuple[TileKey, int, int]) -> bytes:
    tile_key, first, count = place
    tile = tiles.get(tile_key, b"")
    hashes = tile[first * HASH_SIZE:(first + count) * HASH_SIZE]
    if len(hashes) != count * HASH_SIZE:
        raise MissingNodeError(key)
    return perfect_root([hashes[i:i + HASH_SIZE] for i in range(0, len(hashes), HASH_SIZE)])
