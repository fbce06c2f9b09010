"""Integrity of the sealed log: its head, a full verification, and a verifiable export."""

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Auditor, Reader
from infra.seal import ALGORITHM, GENESIS_HASH, format_time
from infra.service import ReadService, export_line
from infra.store import LogStore

EXPORT_FORMAT = "chipledger-export-v1"


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


def export_lines(store: LogStore) -> Iterator[str]:
    """A header line, then every event up to the head at the start, with its seal."""
    head = store.head()
    head_position = head.position if head else 0
    header = {
        "format": EXPORT_FORMAT,
        "algorithm": ALGORITHM,
        "exported_at": format_time(datetime.now(UTC)),
        "head_position": head_position,
        "head_hash": head.hash if head else GENESIS_HASH,
    }
    yield json.dumps(header, sort_keys=True) + "\n"
    for entry in store.iter_entries():
        if entry.position > head_position:
            return
        yield export_line(entry) + "\n"


async def export_log(request: Request, _: Auditor) -> StreamingResponse:
    """The whole log as NDJSON with hashes, verifiable offline."""
    store: LogStore = request.app.state.container.store
    return StreamingResponse(export_lines(store), media_type="application/x-ndjson")


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1", tags=["audit"])
    router.add_api_route("/integrity", read_integrity, methods=["GET"], name="read_integrity")
    router.add_api_route("/integrity/verification", verify_integrity, methods=["POST"],
                         name="verify_integrity")
    router.add_api_route("/exports", export_log, methods=["GET"], name="export_log")
    app.include_router(router)
