"""Signed checkpoints of the log's head, and verification against them.

The service signs (position, hash, recorded_at) of its head with an Ed25519 key kept in a file
outside the event log, generated on first start. Checkpoints live in their own append-only
table: they are not events and never move the head. An auditor who kept an earlier checkpoint
can prove the current log extends the one they saw: the chain up to that position is unchanged.

Two rules keep a signature meaningful. One key per database: the first process to sign for a
database registers its public key there, and a process holding another key does not start
(`signing_key_for`, the one place a signing key is loaded and checked). Signatures only over
extensions: the head is signed only if it extends the latest checkpoint; otherwise the
checkpoint is refused and an integrity alarm raised (`Checkpointer.checkpoint_now`).
"""


import itertools
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from dataclasses import dataclass

import structlog

from domain.errors import Conflict
from infra.checkpoint_keys import SIGNATURE_ALGORITHM as SIGNATURE_ALGORITHM
from infra.checkpoint_keys import Checkpoint as Checkpoint
from infra.checkpoint_keys import SigningKey as SigningKey
from infra.checkpoint_keys import load_public_key as load_public_key
from infra.checkpoint_keys import read_public_key as read_public_key
from infra.checkpoint_keys import signature_holds as signature_holds
from infra.checkpoint_store import CheckpointStore as CheckpointStore
from infra.checkpoint_store import KeyRegistry as KeyRegistry
from infra.checkpoint_store import SigningKeyMismatchError as SigningKeyMismatchError
from infra.checkpoint_store import signing_key_for as signing_key_for
from infra.checkpoint_store import signing_key_path as signing_key_path
from infra.needs import SigningNeeds
from infra.store import LogEntry, LogStore
from infra.verify import ChainRow, Sealed, Verification, verify_chain, verify_rows

log = structlog.get_logger("chipledger.checkpoints")
# The alarm a head that does not extend the latest checkpoint raises (see infra.alarms).
ALARM_COMPONENT, ALARM_KEY = "integrity", "checkpoint"


@dataclass(frozen=True)
class Extension:
    """Does a log extend the one a checkpoint saw?"""

    ok: bool
    signature_ok: bool
    chain: Verification
    checkpoint_position: int
    reason: str | None


def verify_extends(entries: Iterable[Sealed], checkpoint: Checkpoint,
                   trusted_public: bytes | None = None) -> Extension:
    signature_ok = signature_holds(checkpoint, trusted_public)
    at_checkpoint: list[str] = []

    def watch(stream: Iterable[Sealed]) -> Iterable[Sealed]:
        for entry in stream:
            if entry.position == checkpoint.position:
                at_checkpoint.append(entry.hash)
            yield entry

    chain = verify_chain(watch(entries))
    reason = None
    if not signature_ok:
        reason = "the checkpoint's signature does not verify"
    elif not chain.ok and (chain.first_mismatch or 0) <= checkpoint.position:
        reason = f"the chain breaks at position {chain.first_mismatch}: {chain.reason}"
    elif chain.verified_through < checkpoint.position and chain.ok:
        reason = (f"the log ends at position {chain.verified_through}, before the "
                  f"checkpoint's {checkpoint.position}")
    elif at_checkpoint and at_checkpoint[0] != checkpoint.hash:
        reason = (f"position {checkpoint.position} now has hash {at_checkpoint[0]}, not the "
                  f"checkpointed {checkpoint.hash}: the log was rewritten")
    elif not chain.ok:
        reason = f"the chain breaks at position {chain.first_mismatch}: {chain.reason}"
    return Extension(reason is None, signature_ok, chain, checkpoint.position, reason)


class CheckpointRefusedError(Conflict):
    """Signing the head would vouch for a log that does not extend the latest checkpoint."""

    def __init__(self, reason: str, position: int) -> None:
        super().__init__(reason)
        self.reason, self.position = reason, position


def extension_problem(store: LogStore, key: SigningKey, latest: Checkpoint,
                      head: LogEntry | None) -> tuple[str, int] | None:
    """Why the head does not extend the latest checkpoint, and the position where the log
    stops doing so; None when it does: the checkpoint is this database's, its position still
    has its hash, and the chain recomputes from there to the head."""
    at = latest.position
    if not signature_holds(latest, key.public_raw):
        return (f"the latest checkpoint (position {at}) is not signed by this database's key "
                f"{key.key_id}", at)
    if head is None or head.position < at:
        end = head.position if head else 0
        return f"the log ends at position {end}, before the latest checkpoint's {at}", end + 1
    stored = store.entries(after=at - 1, limit=1)
    found = stored[0].hash if stored and stored[0].position == at else "none"
    if found != latest.hash:
        return (f"position {at} now has hash {found}, not the checkpointed {latest.hash}: the "
                "log was rewritten", at)
    return _chain_problem(store, latest, head)


def _chain_problem(store: LogStore, latest: Checkpoint,
                   head: LogEntry) -> tuple[str, int] | None:
    """Where the chain from the checkpoint's hash to the head does not recompute, if it
    does not (the fast reader and verifier of `ReadService.verify`)."""
    with closing(store.iter_chain_rows(after=latest.position)) as pages:
        chain = verify_rows(_through(pages, head.position), store.canonical_time,
                            after=latest.position, prev_hash=latest.hash)
    if not chain.ok:
        return (f"the chain breaks at position {chain.first_mismatch}, after the checkpoint at "
                f"{latest.position}: {chain.reason}", chain.first_mismatch or latest.position)
    if (chain.verified_through, chain.head_hash) != (head.position, head.hash):
        return (f"the chain from the checkpoint ends at position {chain.verified_through}, not "
                f"at the head's {head.position}", chain.verified_through + 1)
    return None


def _through(pages: Iterable[Iterable[ChainRow]], last: int) -> Iterator[list[ChainRow]]:
    """The rows up to position `last` (the head that was read, not what was appended since)."""
    for page in pages:
        rows = list(itertools.takewhile(lambda row: row[0][0] <= last, page))
        yield rows
        if not rows or rows[-1][0][0] >= last:
            return


class Checkpointer:
    def __init__(self, needs: SigningNeeds, key: SigningKey) -> None:
        self.store = needs.store
        self.checkpoints = CheckpointStore(needs.store)
        self.alarms = needs.alarms
        self.key = key
        self.settings = needs.settings
        self._lock = threading.Lock()

    def checkpoint_now(self) -> Checkpoint | None:
        """Sign the head unless the latest checkpoint already covers it. Raises
        CheckpointRefusedError, signing nothing, when the head does not extend the latest
        checkpoint."""
        with self._lock:
            # The latest checkpoint first: one another process signs meanwhile is then of a
            # head this read of the head reaches too.
            latest = self.checkpoints.latest()
            head = self.store.head()
            if latest is not None:
                self._check_extends(latest, head)
            if head is None or (latest is not None and latest.position >= head.position):
                return latest
            return self._sign(head)

    def _sign(self, head: LogEntry) -> Checkpoint | None:
        checkpoint = self.key.sign(head.position, head.hash, head.recorded_at)
        try:
            self.checkpoints.add(checkpoint)
        except Exception:  # another process signed this position first
            return self.checkpoints.latest()
        log.info("checkpoint_signed", position=checkpoint.position, key_id=self.key.key_id)
        return checkpoint

    def _check_extends(self, latest: Checkpoint, head: LogEntry | None) -> None:
        """Refuse, with an integrity alarm every process on the database reports, unless the
        head extends `latest`; the alarm is cleared once it does again (the log restored)."""
        problem = extension_problem(self.store, self.key, latest, head)
        if problem is None:
            if any(a.key == ALARM_KEY for a in self.alarms.active(ALARM_COMPONENT)):
                self.alarms.clear(ALARM_COMPONENT, ALARM_KEY)
            return
        reason, position = problem
        log.error("checkpoint_refused", reason=reason, position=position,
                  checkpoint_position=latest.position, head_position=head.position if head else 0)
        self.alarms.raise_alarm(ALARM_COMPONENT, ALARM_KEY, reason, position)
        raise CheckpointRefusedError(reason, position)

    def due(self, last_time: float, refused: bool = False) -> bool:
        """Whether to sign now: enough new events, or enough time. After a refusal, time
        alone: the log is checked again on that schedule, not on every poll."""
        head = self.store.head()
        latest = self.checkpoints.latest()
        behind = (head.position if head else 0) - (latest.position if latest else 0)
        if behind <= 0:
            return False
        return (not refused and behind >= self.settings.checkpoint_every_events) or \
            time.monotonic() - last_time >= self.settings.checkpoint_every_seconds

    def run(self, stop: threading.Event) -> None:
        last, refused = time.monotonic(), False
        while not stop.is_set():
            try:
                if self.due(last, refused):
                    refused = self._attempt()
                    last = time.monotonic()
            except Exception:
                log.exception("checkpoint_failed")
            stop.wait(min(5.0, self.settings.poll_interval * 4))

    def _attempt(self) -> bool:
        """Checkpoint now; whether it was refused (alarmed and logged already)."""
        try:
            self.checkpoint_now()
        except CheckpointRefusedError:
            return True
        return False
