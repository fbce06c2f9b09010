"""The Merkle tree over the log, for anyone to check (docs/merkle.md): its C2SP checkpoint,
inclusion and consistency proofs, and witnesses' cosignatures."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.auth import Reader, Witness
from api.problems import Problem, field_errors, invalid
from api.reads import MAX_POSITION
from domain.errors import FieldProblem
from infra.merkle.certify import Certifier
from infra.merkle.proofs import ProofRequestError
from infra.merkle.proving import Prover
from infra.merkle.publish import (
    CosignatureRefusedError,
    Published,
    TreePublisher,
    TreeRefusedError,
)

Size = Annotated[int, Query(ge=1, le=MAX_POSITION)]
MAX_NOTE_BYTES = 64 * 1024


async def read_checkpoint(request: Request, _: Reader,
                          published: bool = False) -> PlainTextResponse:
    """The latest C2SP checkpoint with the cosignatures it has (signing the tree first if it
    grew); with `published=true`, the latest one the witness policy's quorum cosigned."""
    publisher: TreePublisher = request.app.state.publisher
    if published:
        found = await run_in_threadpool(publisher.latest_published)
        if found is None:
            raise Problem(404, "Not found", "no checkpoint has the witnesses' quorum yet")
        return _note(found)
    return _note(await run_in_threadpool(signed_now, publisher))


def signed_now(publisher: TreePublisher) -> Published:
    published: Published = unrefused(publisher.latest)
    return published


def unrefused(sign: Callable[..., Any], *args: Any) -> Any:
    """What `sign` answers; a 409 when it refuses to sign a tree that does not extend the
    latest signed checkpoint."""
    try:
        return sign(*args)
    except TreeRefusedError as refused:
        raise Problem(409, "Tree does not extend the latest signed checkpoint",
                      f"{refused.reason}; nothing was signed, and an integrity alarm is raised "
                      "(see /readyz)", slug="checkpoint-refused") from None


async def with_proofs(request: Request, answer: dict[str, Any]) -> dict[str, Any]:
    """An answer with the checkpoint it was checked against and the inclusion proof of each
    evidence position it cites (`?proofs=true`)."""
    certifier: Certifier = request.app.state.certifier
    return answer | {"proofs": await run_in_threadpool(unrefused, certifier.proofs, answer)}


def _note(published: Published) -> PlainTextResponse:
    return PlainTextResponse(published.note, headers={
        "Chipledger-Tree-Size": str(published.signed.size),
        "Chipledger-Witnesses": ",".join(published.witnesses),
        "Chipledger-Published": "true" if published.published else "false"})


async def read_inclusion(request: Request, _: Reader, position: Size,
                         tree_size: Size) -> dict[str, Any]:
    prover: Prover = request.app.state.prover
    return await run_in_threadpool(_proved, prover.inclusion, position, tree_size)


async def read_consistency(request: Request, _: Reader, from_size: Size,
                           to_size: Size) -> dict[str, Any]:
    prover: Prover = request.app.state.prover
    return await run_in_threadpool(_proved, prover.consistency, from_size, to_size)


def _proved(prove: Any, *sizes: int) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = prove(*sizes)
    except ProofRequestError as refused:
        raise invalid(field_errors([FieldProblem((refused.field,), str(refused))],
                                   prefix=("query",))) from None
    return answer


async def add_cosignature(request: Request, _: Witness) -> PlainTextResponse:
    """A witness's cosigned checkpoint (text/plain: the note with its cosignature lines)."""
    body = await request.body()
    publisher: TreePublisher = request.app.state.publisher
    try:
        if len(body) > MAX_NOTE_BYTES:
            raise CosignatureRefusedError(f"a checkpoint note is at most {MAX_NOTE_BYTES} bytes")
        kept = await run_in_threadpool(publisher.add_cosignature, body.decode("utf-8"))
    except (CosignatureRefusedError, UnicodeDecodeError) as refused:
        raise invalid(field_errors([FieldProblem((), str(refused))])) from None
    return _note(kept)


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1/integrity", tags=["audit"])
    router.add_api_route("/checkpoint", read_checkpoint, methods=["GET"],
                         name="read_tree_checkpoint", response_class=PlainTextResponse)
    router.add_api_route("/proofs/inclusion", read_inclusion, methods=["GET"],
                         name="read_inclusion_proof")
    router.add_api_route("/proofs/consistency", read_consistency, methods=["GET"],
                         name="read_consistency_proof")
    router.add_api_route("/cosignatures", add_cosignature, methods=["POST"],
                         name="add_cosignature", response_class=PlainTextResponse)
    app.include_router(router)
