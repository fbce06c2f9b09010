"""Publishing the tree: C2SP checkpoints signed by the database's one key, and witnesses'
cosignatures of them.

The note's key is the service's signing key (infra.checkpoints.signing_key_for: one per
database), named by the log's origin (CHIPLEDGER_LOG_ORIGIN). As for the chain's
checkpoints, the service signs only a tree that extends the last one it signed: the latest
note still verifies with this database's key, the tree has at least its leaves, and the tree
at the note's size still has the note's root. Otherwise it signs nothing, raises the
integrity alarm `integrity/merkle-checkpoint` and says why (TreeRefusedError).

A witness's cosignature is kept if its key is one of CHIPLEDGER_WITNESS_KEYS and it signs a
checkpoint this service signed; a checkpoint counts as published once
CHIPLEDGER_WITNESS_QUORUM of those keys have cosigned it.
"""

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from infra.bootstrap import Container
from infra.checkpoints import SigningKey
from infra.merkle import proofs
from infra.merkle.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from infra.merkle.cosignature import CosignatureVerifier
from infra.merkle.note import Ed25519Signer, NoteError, open_note, parse_note
from infra.merkle.store import MissingNodeError
from infra.merkle.tree_store import SignedTree, TreeState, TreeStore
from infra.seal import format_time

log = structlog.get_logger("chipledger.merkle")
ALARM_COMPONENT, ALARM_KEY = "integrity", "merkle-checkpoint"


class TreeRefusedError(Exception):
    """Signing the tree would vouch for one that does not extend the last signed."""

    def __init__(self, reason: str, size: int) -> None:
        super().__init__(reason)
        self.reason, self.size = reason, size


class CosignatureRefusedError(ValueError):
    """A cosignature that is not kept, saying why."""


@dataclass(frozen=True)
class Published:
    signed: SignedTree
    note: str  # the log's note with every cosignature kept for it
    witnesses: tuple[str, ...]  # the names of the trusted witnesses who cosigned it
    published: bool  # the policy's quorum of them did


class TreePublisher:
    def __init__(self, container: Container, key: SigningKey) -> None:
        settings = container.settings
        self.tree = TreeStore(container.store.dialect)
        self.alarms = container.alarms
        self.origin = settings.log_origin
        self.signer = Ed25519Signer(self.origin, key.private)
        self.witnesses = [CosignatureVerifier.from_vkey(v) for v in settings.witness_key_list()]
        self.quorum = settings.witness_quorum
        self._lock = threading.Lock()

    def vkey(self) -> str:
        """The note verifier key: `<origin>+<hex key ID>+<base64(0x01 || public key)>`."""
        return self.signer.vkey()

    def sign_now(self) -> SignedTree:
        """The latest signed tree, signing the integrated tree first if it has grown."""
        with self._lock:
            latest = self.tree.latest_signed()
            state = self.tree.state()
            if latest is not None:
                self._check_extends(latest, state)
                if latest.size >= state.size:
                    return latest
            return self._sign(state)

    def latest(self) -> Published:
        return self.published(self.sign_now())

    def published(self, signed: SignedTree) -> Published:
        lines = self.tree.cosignature_lines(signed.size)
        note = signed.note + "".join(lines)
        names = tuple(sorted(self._witnessed(note)))
        return Published(signed, note, names, len(names) >= self.quorum)

    def latest_published(self) -> Published | None:
        """The latest checkpoint the policy's quorum of witnesses cosigned."""
        for size in self.tree.cosigned_sizes():
            found = self.tree.signed_at_size(size)
            if found is not None and (answer := self.published(found)).published:
                return answer
        return None

    def add_cosignature(self, cosigned: str) -> Published:
        """Keep the trusted witnesses' cosignatures in `cosigned` (a checkpoint note this
        service signed, with their lines)."""
        try:
            text, _ = parse_note(cosigned)
            checkpoint, _ = open_checkpoint(cosigned, self.origin, [self.signer.verifier])
            opened = open_note(cosigned, self.witnesses)
        except NoteError as refused:
            raise CosignatureRefusedError(str(refused)) from None
        signed = self.tree.signed_at_size(checkpoint.size)
        if signed is None or not signed.note.startswith(text):
            raise CosignatureRefusedError(f"this log signed no checkpoint {text!r}")
        for signature in opened.verified:
            self.tree.add_cosignature(signed.size, signature.name, signature.key_id.hex(),
                                      signature.line(), format_time(datetime.now(UTC)))
        return self.published(signed)

    def _witnessed(self, note: str) -> list[str]:
        if not self.witnesses:
            return []
        try:
            return [s.name for s in open_note(note, self.witnesses).verified]
        except NoteError:
            return []

    def _sign(self, state: TreeState) -> SignedTree:
        checkpoint = Checkpoint(self.origin, state.size, state.edge.root())
        note = sign_checkpoint(checkpoint, self.signer)
        self.tree.add_signed(SignedTree(state.size, checkpoint.root, note,
                                        format_time(datetime.now(UTC))))
        signed = self.tree.signed_at_size(state.size)  # ours, or another process's first
        assert signed is not None, "a signed tree is never removed"
        log.info("tree_signed", size=signed.size, root=signed.root.hex())
        return signed

    def _check_extends(self, latest: SignedTree, state: TreeState) -> None:
        reason = self._problem(latest, state)
        if reason is None:
            if any(a.key == ALARM_KEY for a in self.alarms.active(ALARM_COMPONENT)):
                self.alarms.clear(ALARM_COMPONENT, ALARM_KEY)
            return
        log.error("tree_signing_refused", reason=reason, signed_size=latest.size,
                  tree_size=state.size)
        self.alarms.raise_alarm(ALARM_COMPONENT, ALARM_KEY, reason, latest.size)
        raise TreeRefusedError(reason, latest.size)

    def _problem(self, latest: SignedTree, state: TreeState) -> str | None:
        """Why the tree does not extend the latest signed one; None when it does."""
        try:
            checkpoint, _ = open_checkpoint(latest.note, self.origin, [self.signer.verifier])
        except NoteError as error:
            return (f"the latest signed tree (size {latest.size}) is not signed by this "
                    f"database's key as {self.origin}: {error}")
        if (checkpoint.size, checkpoint.root) != (latest.size, latest.root):
            return f"the latest signed tree's size and root are not its note's ({latest.size})"
        if state.size < latest.size:
            return (f"the tree has {state.size} leaves, fewer than the {latest.size} of the "
                    "latest signed tree")
        try:
            root = proofs.root_at(self.tree.reader(state), latest.size)
        except MissingNodeError as missing:
            return f"the tree lost nodes under the latest signed tree: {missing}"
        if root != latest.root:
            return (f"the tree at size {latest.size} has root {root.hex()}, not the signed "
                    f"{latest.root.hex()}: the log was rewritten")
        return None
