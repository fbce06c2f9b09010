"""The tree's tables, on either backend: full tiles, the edge, signed tree heads, cosignatures.

- `chipledger_merkle_tiles (level, idx, hashes)`: full C2SP tiles (infra.merkle.tiles),
  immutable like the log (the backends' triggers refuse UPDATE and DELETE).
- `chipledger_merkle_state`: one row, the integrated size, the chain hash of the event at that
  position and the edge. The integrator rewrites it with each batch, in the batch's
  transaction and only if the size it read is still there: a crash loses the batch whole, and
  of two integrators racing only one moves the tree.
- `chipledger_merkle_checkpoints (size, root, note, signed_at)`: every checkpoint note signed,
  immutable; `chipledger_merkle_cosignatures`: the witnesses' signature lines, append-only.

The tables are declared in infra.schema (MERKLE_*), which renders both backends' DDL.
"""

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from infra.dialect import Dialect
from infra.merkle.tiles import Edge, Tile, TileKey, TileReader
from infra.schema import MERKLE_TILES
from infra.seal import GENESIS_HASH

TILE_CACHE = 4096  # full tiles kept in memory (8 KiB each): they never change


@dataclass(frozen=True)
class TreeState:
    size: int
    chain_hash: str  # the chain hash at position `size` (GENESIS_HASH at 0)
    edge: Edge


class TreeMovedError(Exception):
    """Another integrator moved the tree since this one read it: read it again."""


@dataclass(frozen=True)
class SignedTree:
    size: int
    root: bytes
    note: str  # the log's signed note, without cosignatures
    signed_at: str


class TreeStore:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.tiles, self.state_table = dialect.merkle_tiles_table, dialect.merkle_state_table
        self.notes = dialect.merkle_checkpoints_table
        self.cosignatures = dialect.merkle_cosignatures_table
        self._cache: dict[TileKey, bytes] = {}
        self._cache_lock = threading.Lock()

    # the tree -----------------------------------------------------------------------------

    def state(self) -> TreeState:
        row = self._one(f"SELECT size, chain_hash, edge FROM {self.state_table}")
        if row is None:
            return TreeState(0, GENESIS_HASH, Edge())
        size = int(row["size"])
        return TreeState(size, row["chain_hash"], Edge.from_bytes(size, bytes(row["edge"])))

    def reader(self, state: TreeState | None = None) -> TileReader:
        return TileReader((state or self.state()).edge, self.fetch_tiles)

    def commit(self, before: int, after: TreeState, tiles: list[Tile]) -> None:
        """The batch's tiles and the new state, in one transaction, if the tree is still at
        `before`; TreeMovedError (nothing written) if it is not."""
        d = self.dialect
        with d.transaction(commit=True) as cursor:
            if before == 0:
                cursor.execute(d.sql(
                    f"INSERT INTO {self.state_table} (singleton, size, chain_hash, edge) "
                    "VALUES (1, 0, %s, %s) ON CONFLICT (singleton) DO NOTHING"),
                    (GENESIS_HASH, b""))
            cursor.execute(d.sql(
                f"UPDATE {self.state_table} SET size = %s, chain_hash = %s, edge = %s "
                "WHERE singleton = 1 AND size = %s"),
                (after.size, after.chain_hash, after.edge.to_bytes(), before))
            if cursor.rowcount != 1:
                raise TreeMovedError()
            d.insert_many(cursor, self.tiles, MERKLE_TILES.typed(), tiles)

    def fetch_tiles(self, keys: Sequence[TileKey]) -> dict[TileKey, bytes]:
        found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [key for key in keys if key not in found]
        if missing:
            where = " OR ".join("(level = %s AND idx = %s)" for _ in missing)
            params = tuple(value for key in missing for value in key)
            rows = self._all(f"SELECT level, idx, hashes FROM {self.tiles} WHERE {where}",
                             params)
            read = {(int(r["level"]), int(r["idx"])): bytes(r["hashes"]) for r in rows}
            self._remember(read)
            found |= read
        return found

    def _remember(self, tiles: dict[TileKey, bytes]) -> None:
        with self._cache_lock:
            if len(self._cache) + len(tiles) > TILE_CACHE:
                self._cache.clear()
            self._cache.update(tiles)

    # signed tree heads ----------------------------------------------------------------------

    def latest_signed(self) -> SignedTree | None:
        row = self._one(f"SELECT size, root, note, signed_at FROM {self.notes} "
                        "ORDER BY size DESC LIMIT 1")
        return _signed(row) if row else None

    def signed_at_size(self, size: int) -> SignedTree | None:
        row = self._one(f"SELECT size, root, note, signed_at FROM {self.notes} "
                        "WHERE size = %s", (size,))
        return _signed(row) if row else None

    def signed_at_or_before(self, size: int) -> SignedTree | None:
        row = self._one(f"SELECT size, root, note, signed_at FROM {self.notes} "
                        "WHERE size <= %s ORDER BY size DESC LIMIT 1", (size,))
        return _signed(row) if row else None

    def add_signed(self, signed: SignedTree) -> None:
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"INSERT INTO {self.notes} (size, root, note, signed_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (size) DO NOTHING"),
                (signed.size, signed.root, signed.note, signed.signed_at))

    def cosignature_lines(self, size: int) -> list[str]:
        rows = self._all(f"SELECT line FROM {self.cosignatures} WHERE size = %s "
                         "ORDER BY name, key_id", (size,))
        return [row["line"] for row in rows]

    def cosigned_sizes(self, limit: int = 100) -> list[int]:
        """The latest sizes witnesses cosigned, newest first."""
        rows = self._all(f"SELECT DISTINCT size FROM {self.cosignatures} ORDER BY size DESC "
                         "LIMIT %s", (limit,))
        return [int(row["size"]) for row in rows]

    def add_cosignature(self, size: int, name: str, key_id: str, line: str,
                        added_at: str) -> bool:
        """Whether it was added (a witness's one cosignature of a size is kept, the first)."""
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self.dialect.sql(
                f"INSERT INTO {self.cosignatures} (size, name, key_id, line, added_at) VALUES "
                "(%s, %s, %s, %s, %s) ON CONFLICT (size, name, key_id) DO NOTHING"),
                (size, name, key_id, line, added_at))
            return bool(cursor.rowcount == 1)

    # ----------------------------------------------------------------------------------------

    def _one(self, statement: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self._all(statement, params)
        return rows[0] if rows else None

    def _all(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.sql(statement), params)
            return list(cursor.fetchall())


def _signed(row: Any) -> SignedTree:
    return SignedTree(int(row["size"]), bytes(row["root"]), row["note"], row["signed_at"])

