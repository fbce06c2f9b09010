"""Integrity of the sealed log: its head, a full verification, and a verifiable export."""

import base64
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Auditor, Reader
from api.problems import Problem
from api.proofs import signed_now, unrefused
from infra.bundle import EXPORT_FORMAT, canonical_json
from infra.checkpoints import (
    SIGNATURE_ALGORITHM,
    Checkpoint,
    Checkpointer,
    CheckpointRefusedError,
    CheckpointStore,
    SigningKey,
)
from infra.seal import ALGORITHM, GENESIS_HASH, format_time
from infra.service import ReadService, export_line
from infra.store import LogStore


async def read_integrity(request: Request, _: Reader) -> dict[str, Any]:
    store: LogStore = request.app.state.container.store
    head = await run_in_threadpool(store.head)
    return {
        "head_position": head.position if head else 0,
        "head_hash": head.hash if head else GENESIS_HASH,
        "head_recorded_at": format_time(head.recorded_at) if head else None,
        "algorithm": ALGORITHM,
    }


async def verify_integrity(request: Request, _: Auditor) -> dict[str, Any]:
    """Recompute the whole hash chain from position 1."""
    reads: ReadService = request.app.state.reads
    result = await run_in_threadpool(reads.verify)
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


async def export_log(request: Request, _: Auditor) -> StreamingResponse:
    """The whole log as NDJSON with hashes, verifiable offline."""
    store: LogStore = request.app.state.container.store
    checkpoint = await _checkpoint_now(request)
    note = await run_in_threadpool(unrefused, request.app.state.certifier.export_note,
                                   checkpoint.position if checkpoint else 0)
    return StreamingResponse(export_lines(store, checkpoint, note),
                             media_type="application/x-ndjson")


async def read_public_key(request: Request, _: Reader) -> dict[str, Any]:
    """The Ed25519 key that signs checkpoints: verify them with it."""
    key: SigningKey = request.app.state.signing_key
    return {"algorithm": SIGNATURE_ALGORITHM, "key_id": key.key_id,
            "public_key": base64.b64encode(key.public_raw).decode(),
            "public_key_pem": key.public_pem(),
            "note_verifier_key": request.app.state.publisher.vkey()}


async def read_latest_checkpoint(request: Request, _: Reader) -> dict[str, Any]:
    """The latest signed checkpoint of the log's head."""
    checkpoints = CheckpointStore(request.app.state.container.store)
    latest = await run_in_threadpool(checkpoints.latest)
    if latest is None:
        raise Problem(404, "Not found", "no checkpoint has been signed yet")
    return latest.to_json()


async def create_checkpoint(request: Request, _: Auditor) -> JSONResponse:
    """Sign the head now (unless the latest checkpoint already covers it); 409 when the head
    does not extend the latest checkpoint."""
    checkpoint = await _checkpoint_now(request)
    if checkpoint is None:
        raise Problem(409, "Conflict", "the log is empty: there is no head to sign")
    await run_in_threadpool(signed_now, request.app.state.publisher)  # the tree's note too
    return JSONResponse(checkpoint.to_json(), status_code=201)


async def _checkpoint_now(request: Request) -> Checkpoint | None:
    checkpointer: Checkpointer = request.app.state.checkpointer
    try:
        return await run_in_threadpool(checkpointer.checkpoint_now)
    except CheckpointRefusedError as refused:
        raise Problem(409, "Log does not extend the latest checkpoint",
                      f"{refused.reason}; nothing was signed, and an integrity alarm is raised "
                      "(see /readyz)", slug="checkpoint-refused") from None


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1", tags=["audit"])
    router.add_api_route("/integrity", read_integrity, methods=["GET"], name="read_integrity")
    router.add_api_route("/integrity/verification", verify_integrity, methods=["POST"],
                         name="verify_integrity")
    router.add_api_route("/exports", export_log, methods=["GET"], name="export_log")
    router.add_api_route("/integrity/public-key", read_public_key, methods=["GET"],
                         name="read_public_key")
    router.add_api_route("/integrity/checkpoints/latest", read_latest_checkpoint,
                         methods=["GET"], name="read_latest_checkpoint")
    router.add_api_route("/integrity/checkpoints", create_checkpoint, methods=["POST"],
                         name="create_checkpoint")
    app.include_router(router)
