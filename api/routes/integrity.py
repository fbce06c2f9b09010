"""Integrity of the sealed log: its head, a full verification, signed checkpoints, and a
verifiable export."""

import base64
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Auditor, Certify, Checkpoints, Key, Log, Publisher, Reader, Signer
from api.problems import Problem
from domain.times import format_time
from infra.bundle import EXPORT_FORMAT, canonical_json
from infra.checkpoints import SIGNATURE_ALGORITHM, Checkpoint
from infra.seal import ALGORITHM, GENESIS_HASH
from infra.service import export_line, verify_log
from infra.store import LogStore

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get("/integrity", name="read_integrity")
async def read_integrity(_: Reader, log: Log) -> dict[str, Any]:
    head = await run_in_threadpool(log.head)
    return {
        "head_position": head.position if head else 0,
        "head_hash": head.hash if head else GENESIS_HASH,
        "head_recorded_at": format_time(head.recorded_at) if head else None,
        "algorithm": ALGORITHM,
    }


@router.post("/integrity/verification", name="verify_integrity")
async def verify_integrity(_: Auditor, log: Log) -> dict[str, Any]:
    """Recompute the whole hash chain from position 1."""
    result = await run_in_threadpool(verify_log, log)
    return {
        "ok": result.ok,
        "verified_through": result.verified_through,
        "first_mismatch": result.first_mismatch,
        "reason": result.reason,
        "algorithm": ALGORITHM,
    }


def export_lines(store: LogStore, checkpoint: Checkpoint | None = None,
                 tree_note: str | None = None) -> Iterator[str]:
    """A header line (with the signed checkpoint of the exported head, and the Merkle tree's
    signed note of those events or fewer), then every event up to that head, with its seal."""
    head_position = checkpoint.position if checkpoint else 0
    head_hash = checkpoint.hash if checkpoint else GENESIS_HASH
    header = {
        "format": EXPORT_FORMAT,
        "algorithm": ALGORITHM,
        "head_position": head_position,
        "head_hash": head_hash,
        "checkpoint": checkpoint.to_json() if checkpoint else None,
        "tree_checkpoint": tree_note,
    }
    yield canonical_json(header) + "\n"
    for entry in store.iter_entries():
        if entry.position > head_position:
            return
        yield export_line(entry) + "\n"


@router.get("/exports", name="export_log")
async def export_log(_: Auditor, log: Log, signer: Signer,
                     certifier: Certify) -> StreamingResponse:
    """The whole log as NDJSON with hashes, verifiable offline."""
    checkpoint = await run_in_threadpool(signer.checkpoint_now)
    note = await run_in_threadpool(certifier.export_note,
                                   checkpoint.position if checkpoint else 0)
    return StreamingResponse(export_lines(log, checkpoint, note),
                             media_type="application/x-ndjson")


@router.get("/integrity/public-key", name="read_public_key")
async def read_public_key(_: Reader, key: Key, publisher: Publisher) -> dict[str, Any]:
    """The Ed25519 key that signs checkpoints: verify them with it."""
    return {"algorithm": SIGNATURE_ALGORITHM, "key_id": key.key_id,
            "public_key": base64.b64encode(key.public_raw).decode(),
            "public_key_pem": key.public_pem(), "note_verifier_key": publisher.vkey()}


@router.get("/integrity/checkpoints/latest", name="read_latest_checkpoint")
async def read_latest_checkpoint(_: Reader, checkpoints: Checkpoints) -> dict[str, Any]:
    """The latest signed checkpoint of the log's head."""
    latest = await run_in_threadpool(checkpoints.latest)
    if latest is None:
        raise Problem(404, "Not found", "no checkpoint has been signed yet")
    return latest.to_json()


@router.post("/integrity/checkpoints", name="create_checkpoint")
async def create_checkpoint(_: Auditor, signer: Signer,
                            publisher: Publisher) -> JSONResponse:
    """Sign the head now (unless the latest checkpoint already covers it), and the Merkle
    tree as integrated so far; 409 when the head does not extend the latest checkpoint."""
    checkpoint = await run_in_threadpool(signer.checkpoint_now)
    if checkpoint is None:
        raise Problem(409, "Conflict", "the log is empty: there is no head to sign")
    await run_in_threadpool(publisher.sign_now)
    return JSONResponse(checkpoint.to_json(), status_code=201)
