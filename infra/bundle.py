"""Offline verification of an export bundle: no database, only the file (and, for trust, the
service's public key or an earlier checkpoint kept by the auditor).

The bundle's checkpoint carries the public key that signed it; whoever rewrote the file could
have re-signed it with a key of their own, so a signature checked by that embedded key proves
only that the file is self-consistent. Trust comes from a key given by the auditor, or from
the auditor's explicit choice to trust the embedded one (`trust_embedded`)."""

import base64
import json
from collections.abc import Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from domain.aggregates import TOPIC_TO_TYPE
from domain.kinds import KIND_BY_EVENT_TYPE
from infra.checkpoints import Checkpoint, Extension, signature_holds, verify_extends
from infra.merkle.certificate import tree_problem
from infra.merkle.leaves import entry_leaf_hash
from infra.seal import ALGORITHM, RecordedBy, parse_time
from infra.service import export_json
from infra.store import LogEntry
from infra.verify import Verification, verify_chain

# v2: each event line says who recorded it; v3: and its leaf_hash, the header the signed
# checkpoint note of the Merkle tree over the exported events (`tree_checkpoint`)
EXPORT_FORMAT = "chipledger-export-v3"
HEADER_FIELDS = {"format", "algorithm", "head_position", "head_hash", "checkpoint",
                 "tree_checkpoint"}


def canonical_json(value: object) -> str:
    """The one way a bundle line is written: any other byte means the line was edited."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_canonical(line: str, number: int) -> dict[str, Any]:
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise BundleError(f"line {number} is not JSON ({error.msg})") from None
    if not isinstance(item, dict) or canonical_json(item) != line.rstrip("\n"):
        raise BundleError(f"line {number} is not as chipledger wrote it: it was edited")
    return item


class BundleError(Exception):
    """The file is not an export chipledger can read."""


@dataclass(frozen=True)
class BundleVerification:
    ok: bool
    entries: int
    chain: Verification
    checkpoint_ok: bool | None  # None: the bundle carries no checkpoint
    against: Extension | None
    problems: list[str]
    checkpoint: Checkpoint | None = None
    key_trusted: bool = False  # checked by a key given, or the embedded one by choice


def _lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """The file's lines, split at "\n" alone (the only line end chipledger writes), in UTF-8."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise BundleError(f"line {number} is not UTF-8: it was edited") from None


def read_header(path: Path) -> dict[str, Any]:
    with closing(_lines(path)) as lines:
        _, first = next(lines, (1, ""))
    header = _parse_canonical(first, 1)
    if header.get("format") != EXPORT_FORMAT or header.get("algorithm") != ALGORITHM or \
            set(header) != HEADER_FIELDS:
        raise BundleError(f"{path}: not a {EXPORT_FORMAT} file")
    return header


def _header_checkpoint(raw: dict[str, Any]) -> Checkpoint:
    """The header's checkpoint, exactly as chipledger writes one (no field left to a default)."""
    try:
        checkpoint = Checkpoint.from_json(raw)
    except (KeyError, TypeError):
        raise BundleError("line 1: its checkpoint is not as chipledger writes one") from None
    if checkpoint.to_json() != raw:
        raise BundleError("line 1: its checkpoint is not as chipledger writes one")
    return checkpoint


def read_entries(path: Path) -> Iterator[LogEntry]:
    with closing(_lines(path)) as lines:
        next(lines, None)
        for number, line in lines:
            if not line.strip():
                continue
            item = _parse_canonical(line, number)
            try:
                entry = LogEntry(
                    position=int(item["position"]),
                    recorded_at=parse_time(item["recorded_at"]),
                    originator_id=UUID(item["originator_id"]),
                    originator_version=int(item["originator_version"]),
                    topic=str(item["topic"]),
                    state=str(item["state"]).encode(),
                    prev_hash=str(item["prev_hash"]),
                    hash=str(item["hash"]),
                    recorded_by=RecordedBy.from_json(item["recorded_by"]),
                )
                _check_shown_fields(item, entry)
                # its stated leaf_hash is checked after the chain (_tree_problems), which
                # names an edited state first
                if canonical_json(export_json(entry) | {"leaf_hash": item.get("leaf_hash")}) \
                        != line.rstrip("\n"):
                    raise ValueError("it is not as chipledger writes this event")
            except (ValueError, KeyError, TypeError) as error:
                raise BundleError(f"line {number} is not an exported event: {error}") from None
            yield entry


def _check_shown_fields(item: dict[str, Any], entry: LogEntry) -> None:
    """The readable copies (type, kind, record id, version, data) must say what the hashed
    state and topic say."""
    state = json.loads(entry.state)
    event_type = TOPIC_TO_TYPE[entry.topic]
    shown = (item["type"], item["kind"], item["record_id"], item["version"], item["data"])
    held = (event_type, KIND_BY_EVENT_TYPE[event_type].kind, state["record_id"],
            entry.originator_version, state["data"])
    if shown != held:
        raise ValueError("its readable fields differ from its hashed state")


def verify_bundle(path: Path, *, trusted_public: bytes | None = None,
                  against: Checkpoint | None = None,
                  trust_embedded: bool = False) -> BundleVerification:
    """Verify the chain, the header and its checkpoint (by `trusted_public`, else by the key
    embedded in it, which counts as trusted only with `trust_embedded`), and the extension of
    `against`."""
    header = read_header(path)
    problems: list[str] = []
    count = 0
    last_hash: str | None = None

    def counted() -> Iterator[LogEntry]:
        nonlocal count, last_hash
        for entry in read_entries(path):
            count += 1
            last_hash = entry.hash
            yield entry

    chain = verify_chain(counted())
    if not chain.ok:
        problems.append(f"the chain breaks at position {chain.first_mismatch}: {chain.reason}")
    elif chain.verified_through != header.get("head_position") or \
            (count and last_hash != header.get("head_hash")):
        problems.append("the header's head does not match the last event")
    checkpoint_ok, checkpoint = None, None
    raw = header.get("checkpoint")
    if isinstance(raw, dict):
        checkpoint = _header_checkpoint(raw)
        checkpoint_ok = signature_holds(checkpoint, trusted_public) and \
            checkpoint.position == header.get("head_position") and \
            checkpoint.hash == header.get("head_hash")
        if not checkpoint_ok:
            problems.append("the bundle's signed checkpoint does not verify or does not match "
                            "its head")
    elif trusted_public is not None:
        problems.append("the bundle carries no signed checkpoint to check the key against")
    problems += _tree_problems(path, header, checkpoint, trusted_public)
    extension = None
    if against is not None:
        extension = verify_extends(read_entries(path), against, trusted_public)
        if not extension.ok:
            problems.append(f"against the earlier checkpoint: {extension.reason}")
        elif checkpoint is not None and checkpoint.key_id != against.key_id:
            problems.append(f"the earlier checkpoint is signed by key {against.key_id}, the "
                            f"bundle's by key {checkpoint.key_id}")
    return BundleVerification(not problems, count, chain, checkpoint_ok, extension, problems,
                              checkpoint, trusted_public is not None or trust_embedded)


def _tree_problems(path: Path, header: dict[str, Any], checkpoint: Checkpoint | None,
                   trusted_public: bytes | None) -> list[str]:
    """Every event's leaf_hash must be the hash of its leaf bytes, and the tree of the
    exported events must have the root of the header's tree checkpoint, signed by the key
    that signs the chain's checkpoints."""
    problems: list[str] = []
    leaves = _checked_leaves(path, problems)
    note = header.get("tree_checkpoint")
    public = trusted_public or (base64.b64decode(checkpoint.public_key) if checkpoint else None)
    if note is not None and (not isinstance(note, str) or public is None):
        problems.append("the bundle's tree checkpoint cannot be checked without the log's key")
    elif note is not None and public is not None:
        found = tree_problem(note, public, leaves)
        problems += [found] if found else []
    for _ in leaves:  # the rest of the file's leaf hashes, checked
        pass
    return problems


def _checked_leaves(path: Path, problems: list[str]) -> Iterator[bytes]:
    """The leaf hashes of the exported events, recomputed; the first whose line states
    another leaf_hash is named in `problems`."""
    stated = (json.loads(line).get("leaf_hash") for number, line in _lines(path)
              if number > 1 and line.strip())
    for entry, claimed in zip(read_entries(path), stated, strict=True):
        leaf = entry_leaf_hash(entry)
        if claimed != leaf.hex() and not problems:
            problems.append(f"position {entry.position}: its leaf_hash is not the hash of its "
                            "leaf bytes")
        yield leaf
