"""The integrator: keeps the Merkle tree of the sealed log, a batch of events at a time.

Leaf `i` is the event at position `i + 1`, its leaf bytes what the chain hashes for it
(infra.seal.canonical_bytes: the header line, then the stored state). Each batch reads the
chain rows after the integrated size, checks that they continue the chain the tree already
holds (positions in order, each prev_hash the hash before it: the tree never grows over a
gap or a log rewritten under it), hashes the leaves, grows the edge (infra.merkle.tiles) and
commits the filled tiles with the new state in one transaction (infra.merkle.tree_store).
A crash loses the batch being written, nothing else: the next start reads the state back
and goes on from it.

Like the projection runner it follows the log in a background thread, and only the process
holding its lead (infra.lead, name `merkle`) integrates; a chain that does not continue
raises the integrity alarm `integrity/merkle` and the integrator stops growing the tree.
"""

import hashlib
import threading
from collections.abc import Callable, Iterable
from contextlib import closing, suppress
from typing import Any

import structlog

from infra.bootstrap import Container
from infra.merkle.tiles import Tile
from infra.merkle.tree_store import TreeMovedError, TreeState, TreeStore
from infra.seal import HeaderEnds, header_start, json_string
from infra.store import LogStore
from infra.verify import ChainRow

log = structlog.get_logger("chipledger.merkle")
LEAD_NAME = "merkle"
ALARM_COMPONENT, ALARM_KEY = "integrity", "merkle"
Progress = Callable[[int], None]


class ChainGapError(Exception):
    """The rows read do not continue the chain the tree holds."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"position {position}: {reason}")
        self.position, self.reason = position, reason


def leaf_hashes(rows: Iterable[ChainRow], canonical_time: Callable[[Any], str],
                after: int, chain_hash: str) -> tuple[list[bytes], str]:
    """The leaf hashes of chain rows continuing the chain at (`after`, `chain_hash`), and
    the chain hash they end at. Header texts are built as the chain's verifier builds them:
    a commit's time once, a sender's and topic's line end once."""
    sha256, join, start_of = hashlib.sha256, b"".join, header_start
    hashes: list[bytes] = []
    add = hashes.append
    senders: dict[str, HeaderEnds] = {}
    last_time: Any = object()
    time_json, last_by, ends = "", None, HeaderEnds("")
    expected = after + 1
    for (position, recorded_at, originator_id, version, _, prev_hash, hash_, by), \
            (_, topic, state) in rows:
        if position != expected or prev_hash != chain_hash:
            raise ChainGapError(expected, f"found position {position} with prev_hash "
                                f"{prev_hash}, after {chain_hash}")
        if recorded_at != last_time:  # a commit's events share their time: format it once
            last_time, time_json = recorded_at, json_string(canonical_time(recorded_at))
        if by != last_by:  # and their sender
            found = senders.get(by)
            ends = senders[by] = HeaderEnds(by) if found is None else found
            last_by = by
        start = start_of(f'"{originator_id}"', version, position, time_json)
        add(sha256(join((b"\x00", start, ends[topic], state))).digest())
        expected, chain_hash = expected + 1, hash_
    return hashes, chain_hash


class Integrator:
    def __init__(self, container: Container, *, page: int = 20_000,
                 poll_interval: float = 0.5) -> None:
        self.container = container
        self.store: LogStore = container.store
        self.tree = TreeStore(container.store.dialect)
        self.page, self.poll_interval = page, poll_interval

    def step(self, progress: Progress | None = None) -> int:
        """Integrate every event sealed after the tree's size, a page per transaction; how
        many were integrated."""
        state = self.tree.state()
        edge, start, chain_hash = state.edge, state.size, state.chain_hash  # read anew: ours
        with closing(self.store.iter_chain_rows(after=start, page=self.page)) as pages:
            for rows in pages:
                before = edge.size
                hashes, chain_hash = leaf_hashes(rows, self.store.canonical_time, before,
                                                 chain_hash)
                if not hashes:
                    break
                tiles: list[Tile] = edge.grow(hashes)
                self.tree.commit(before, TreeState(edge.size, chain_hash, edge), tiles)
                if progress:
                    progress(edge.size)
        return edge.size - start

    def catch_up(self, progress: Progress | None = None) -> int:
        """Integrate to the head as it is now, beside any integrator running (whose batches
        count); the tree's size."""
        head = self.store.head()
        target = head.position if head else 0
        while True:
            with suppress(TreeMovedError):  # another one moved it: go on from there
                self.step(progress)
            size = self.tree.state().size
            if size >= target:
                return size

    def run(self, stop: threading.Event) -> None:
        """Follow the log until `stop` is set, while holding the lead."""
        waiter = self.container.backend.waiter(LEAD_NAME, self.poll_interval)
        try:
            while not stop.is_set():
                if not waiter.lead():
                    stop.wait(self.poll_interval)
                elif not self._step_logged():
                    waiter.wait(stop)
        finally:
            waiter.close()

    def _step_logged(self) -> bool:
        """One step; whether it integrated anything (failures logged, alarmed, and waited
        out on the next poll)."""
        try:
            return self.step() > 0
        except TreeMovedError:
            return True  # another integrator moved it: read its state again
        except ChainGapError as gap:
            log.error("merkle_chain_gap", position=gap.position, reason=gap.reason)
            self.container.alarms.raise_alarm(
                ALARM_COMPONENT, ALARM_KEY, f"the log does not continue the chain the Merkle "
                f"tree holds at position {gap.position}: {gap.reason}", gap.position)
        except Exception:
            log.exception("merkle_integration_failed")
        return False
