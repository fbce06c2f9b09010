"""Proof-carrying answers: a posture with the signed checkpoint it was checked against and an
inclusion proof for every evidence event, and the offline check of one.

A certificate (`chipledger-posture-certificate/v1`) is one JSON document:

    {"format": ..., "posture": <the GET .../posture answer>,
     "checkpoint": <the C2SP checkpoint note, cosignatures included>,
     "evidence": [{"event": <the event as exports write it>, "proof": <its inclusion proof
                   at the checkpoint's size>}, ...]}

`verify_certificate` needs nothing but the document and the log's key: the note's signature
holds; each evidence event's leaf bytes, recomputed from its exported fields, hash to its
proof's leaf hash, and the proof leads to the checkpoint's root; its readable data is what
its hashed state says; and every position the answer cites as evidence is there.
"""

import base64
import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from infra.checkpoints import read_public_key
from infra.merkle.checkpoint import Checkpoint, open_checkpoint
from infra.merkle.hashing import leaf_hash
from infra.merkle.note import Ed25519Verifier, NoteError
from infra.merkle.tiles import Edge
from infra.merkle.verify import ProofError, verify_inclusion
from infra.seal import RecordedBy, canonical_bytes, parse_time

FORMAT = "chipledger-posture-certificate/v1"


def exported_leaf(event: dict[str, Any]) -> bytes:
    """The leaf bytes of an event as exports and certificates write it."""
    return canonical_bytes(
        position=int(event["position"]), recorded_at=parse_time(event["recorded_at"]),
        recorded_by=RecordedBy.from_json(event["recorded_by"]),
        originator_id=UUID(event["originator_id"]),
        originator_version=int(event["originator_version"]), topic=str(event["topic"]),
        state=str(event["state"]).encode())


def log_verifier(key: str, origin: str) -> Ed25519Verifier:
    """The log's key as a note verifier: a verifier key (`name+id+key`), or the public key
    in any form `--public-key` takes (then named by the note's origin)."""
    if "+" in key and not key.lstrip().startswith(("{", "-----")):
        try:
            return Ed25519Verifier.from_vkey(key.strip())
        except NoteError:
            pass  # base64 holds '+' too: read it as a public key
    return Ed25519Verifier(origin, read_public_key(key))


def open_log_note(note: str, key: str) -> Checkpoint:
    """The checkpoint of a note the log's key signed; NoteError saying why not."""
    origin = note.split("\n", 1)[0]
    verifier = log_verifier(key, origin)
    checkpoint, _ = open_checkpoint(note, verifier.name, [verifier])
    return checkpoint


def tree_problem(note: str, public: bytes, leaves: Iterable[bytes]) -> str | None:
    """Why the leaves (their hashes, in log order) do not make the tree the note signed by
    `public` commits to at its size; None when they do."""
    try:
        checkpoint = open_log_note(note, base64.b64encode(public).decode())
    except (NoteError, ValueError) as error:
        return f"the tree checkpoint does not verify: {error}"
    edge = Edge()
    edge.grow(list(itertools.islice(leaves, checkpoint.size)))
    if edge.size < checkpoint.size:
        return (f"the tree checkpoint is of {checkpoint.size} events, the file holds "
                f"{edge.size}")
    if edge.root() != checkpoint.root:
        return (f"the tree of the first {checkpoint.size} events has root "
                f"{edge.root().hex()}, not the tree checkpoint's {checkpoint.root.hex()}")
    return None


def evidence_positions(posture: dict[str, Any]) -> list[int]:
    return sorted({int(p) for f in posture.get("findings", []) for p in f.get("evidence", [])})


@dataclass(frozen=True)
class CertificateCheck:
    ok: bool
    problems: list[str]
    checkpoint: Checkpoint | None
    events: int


def verify_certificate(document: Any, key: str) -> CertificateCheck:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return CertificateCheck(False, [f"not a {FORMAT} document"], None, 0)
    try:
        checkpoint = open_log_note(str(document.get("checkpoint", "")), key)
    except (NoteError, ValueError) as error:
        return CertificateCheck(False, [f"the checkpoint does not verify: {error}"], None, 0)
    evidence = document.get("evidence")
    if not isinstance(evidence, list):
        return CertificateCheck(False, ["the certificate has no evidence list"], checkpoint, 0)
    problems = [problem for item in evidence for problem in _item_problems(item, checkpoint)]
    proved = {item["event"]["position"] for item in evidence if isinstance(item, dict)
              and isinstance(item.get("event"), dict) and "position" in item["event"]}
    missing = [p for p in evidence_positions(document.get("posture") or {}) if p not in proved]
    problems += [f"evidence position {p} is cited but not proved" for p in missing]
    return CertificateCheck(not problems, problems, checkpoint, len(evidence))


def _item_problems(item: Any, checkpoint: Checkpoint) -> Iterable[str]:
    try:
        event, proof = item["event"], item["proof"]
        position = int(event["position"])
        leaf = leaf_hash(exported_leaf(event))
        shown_data = json.loads(event["state"])["data"] == event["data"]
        hashes = [bytes.fromhex(h) for h in proof["hashes"]]
        claimed = (int(proof["position"]), int(proof["tree_size"]), proof["leaf_hash"])
    except (KeyError, TypeError, ValueError) as error:
        return [f"an evidence item is not an event and its proof: {error!r}"]
    if claimed != (position, checkpoint.size, leaf.hex()):
        return [f"position {position}: its proof is not of this event in the checkpoint's tree "
                f"of {checkpoint.size}: the event's leaf hash is {leaf.hex()}"]
    try:
        verify_inclusion(position - 1, checkpoint.size, leaf, hashes, checkpoint.root)
    except ProofError as error:
        return [f"position {position} is not in the log the checkpoint commits to: {error}"]
    return [] if shown_data else [f"position {position}: its data is not its hashed state's"]
