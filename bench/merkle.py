"""Integrating leaves into the Merkle tree (issue #15: at least 200,000 leaves/s catching up).

In one process, on the same leaves, of the size and shape of the log's events (a canonical
header and a stored state of synthetic ledger lines):

- the baseline: SHA-256 of each leaf with hashlib, and nothing else: no integrator can hash
  its leaves faster;
- ours: what the integrator does with them in memory: leaf hashes, the tree's edge grown a
  batch at a time (infra.merkle.tiles), the C2SP tiles it fills collected;
- with `--database-url`, the integrator catching up that ledger (reading, checking the chain,
  hashing, growing, writing tiles), then the latency of inclusion and consistency proofs at
  its size as the API reads them.

The two alternate for a few rounds and each one's best round is printed (the machine is
shared); the tree's root is checked against the root read back from its store.
"""

import hashlib
import json
import random
import time
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from uuid import UUID

from bench.synthetic import ledger
from infra.bootstrap import bootstrap
from infra.merkle.hashing import LEAF_PREFIX
from infra.merkle.integrator import Integrator, leaf_hashes
from infra.merkle.proving import Prover
from infra.merkle.store import MemoryNodeStore
from infra.merkle.tiles import Edge
from infra.merkle.tree import Tree
from infra.seal import GENESIS_HASH, RecordedBy, canonical_header, format_time
from infra.service import ReadService
from infra.settings import Settings
from infra.store import LogStore

TARGET = 200_000  # leaves/s, issue #15
SENDER = RecordedBy("k-bench", "bench writer", "writer")  # who recorded each event
BATCH = 5000


def leaves(count: int) -> list[bytes]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    made = []
    for position, line in enumerate(ledger(count), start=1):
        moment = format_time(start + timedelta(microseconds=position))
        header = canonical_header(position, moment, SENDER, str(UUID(int=position)), 1,
                                  f"domain.kinds:{line['type']}")
        made.append(header + json.dumps(line, sort_keys=True).encode())
    return made[:count]


def hash_alone(data: list[bytes]) -> float:
    started, sha256 = time.perf_counter(), hashlib.sha256
    for leaf in data:
        sha256(leaf).digest()
    return len(data) / (time.perf_counter() - started)


def integrate(data: list[bytes]) -> tuple[float, Edge, int]:
    """The integrator's work on leaves in memory: leaf hashes, the edge grown a batch at a
    time and the tiles it fills (kept in a list, where the integrator writes them)."""
    started, edge, tiles, sha256 = time.perf_counter(), Edge(), [], hashlib.sha256
    for start in range(0, len(data), BATCH):
        tiles += edge.grow([sha256(LEAF_PREFIX + leaf).digest()
                            for leaf in data[start:start + BATCH]])
    return len(data) / (time.perf_counter() - started), edge, len(tiles)


def main(events: int, rounds: int = 3, url: str | None = None, queries: int = 2000) -> None:
    data = leaves(events)
    print(f"leaves: {len(data):,}, {sum(map(len, data)) / len(data):,.0f} bytes on average")
    baseline, ours = 0.0, 0.0
    for _ in range(rounds):
        baseline = max(baseline, hash_alone(data))
        rate, edge, tiles = integrate(data)
        ours = max(ours, rate)
    tree = Tree(MemoryNodeStore())
    tree.append_leaves(data)
    assert edge.root() == tree.root(), "the tiles' edge disagrees with the compact range"
    verdict = "met" if ours >= TARGET else "NOT met"
    print(f"baseline, hashlib SHA-256 of each leaf alone: {baseline:>10,.0f} leaves/s")
    print(f"integration into the edge and its tiles:      {ours:>10,.0f} leaves/s  "
          f"ratio {ours / baseline:.2f}  (target {TARGET:,}/s: {verdict})")
    print(f"tiles filled: {tiles:,}; root {edge.root().hex()}")
    if url is not None:
        database(url, queries)


def database(url: str, queries: int) -> None:
    """On the ledger at `url`: the chain's verification (the baseline: the same rows read
    and hashed once), the integrator's work on them without its writes, catching up for real
    (all of it on a ledger never integrated), then the latency of proofs at its size as the
    API reads them (state row and tiles)."""
    container = bootstrap(Settings(database_url=url))
    try:
        store, size = container.store, 0
        baseline = _rate(lambda: ReadService(container).verify().verified_through)
        dry = _rate(lambda: _integrate_without_writing(store))
        print(f"baseline, chain verification from the database: {baseline:>10,.0f} events/s")
        print(f"integration from the database, without writes:  {dry:>10,.0f} events/s  "
              f"ratio {dry / baseline:.2f}")
        integrator = Integrator(container)
        before, started = integrator.tree.state().size, time.perf_counter()
        size = integrator.catch_up()
        done, seconds = size - before, time.perf_counter() - started
        if done:
            print(f"catching up {done:,} events, tiles written: {done / seconds:>10,.0f} "
                  f"events/s  ratio {done / seconds / baseline:.2f}  ({seconds:.1f} s)")
        _proof_latency(Prover(integrator.tree), size, queries)
    finally:
        container.close()


def _integrate_without_writing(store: LogStore) -> int:
    edge, chain = Edge(), GENESIS_HASH
    with closing(store.iter_chain_rows()) as pages:
        for rows in pages:
            hashes, chain = leaf_hashes(rows, store.canonical_time, edge.size, chain)
            edge.grow(hashes)
    return edge.size


def _rate(run: Callable[[], int]) -> float:
    started = time.perf_counter()
    count = run()
    return count / (time.perf_counter() - started)


def _proof_latency(prover: Prover, size: int, queries: int) -> None:
    if size == 0:
        raise SystemExit("the ledger holds no events: python -m bench build first")
    rng = random.Random(15)
    for name, prove in (("inclusion", lambda: prover.inclusion(rng.randint(1, size), size)),
                        ("consistency", lambda: prover.consistency(rng.randint(1, size),
                                                                   size))):
        p50, p99 = _latency(prove, queries)
        print(f"{name} proofs at size {size:,}: p50 {p50:.2f} ms, p99 {p99:.2f} ms "
              f"({queries:,} random; target p99 < 5 ms)")


def _latency(prove: Callable[[], object], queries: int) -> tuple[float, float]:
    took = []
    for _ in range(queries):
        started = time.perf_counter()
        prove()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return took[len(took) // 2], took[min(len(took) - 1, int(len(took) * 0.99))]
