"""Integrating leaves into the Merkle tree (issue #15: at least 200,000 leaves/s catching up).

In one process, on the same leaves, of the size and shape of the log's events (a canonical
header and a stored state of synthetic ledger lines):

- the baseline: SHA-256 of each leaf with hashlib, and nothing else: no integrator can hash
  its leaves faster;
- ours: `Tree.append_leaves` in batches, what an integrator catching up does: leaf hashes, the
  compact range and its node hashes, and every completed node written to a dict-backed
  node store.

The two alternate for a few rounds and each one's best round is printed (the machine is
shared); the tree's root is checked against the root read back from its store.
"""

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from uuid import UUID

from bench.synthetic import ledger
from infra.merkle.store import MemoryNodeStore
from infra.merkle.tree import Tree
from infra.seal import RecordedBy, canonical_header, format_time

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


def integrate(data: list[bytes], store: MemoryNodeStore) -> tuple[float, Tree]:
    started, tree = time.perf_counter(), Tree(store)
    for start in range(0, len(data), BATCH):
        tree.append_leaves(data[start:start + BATCH])
    return len(data) / (time.perf_counter() - started), tree


def main(events: int, rounds: int = 3) -> None:
    data = leaves(events)
    print(f"leaves: {len(data):,}, {sum(map(len, data)) / len(data):,.0f} bytes on average")
    baseline, ours = 0.0, 0.0
    for _ in range(rounds):
        baseline = max(baseline, hash_alone(data))
        store = MemoryNodeStore()
        rate, tree = integrate(data, store)
        ours = max(ours, rate)
    assert tree.root() == tree.root_at(tree.size), "the store disagrees with the compact range"
    verdict = "met" if ours >= TARGET else "NOT met"
    print(f"baseline, hashlib SHA-256 of each leaf alone: {baseline:>10,.0f} leaves/s")
    print(f"integration into the tree and node store:     {ours:>10,.0f} leaves/s  "
          f"ratio {ours / baseline:.2f}  (target {TARGET:,}/s: {verdict})")
    print(f"nodes stored: {len(store.nodes):,}; root {tree.root().hex()}")
