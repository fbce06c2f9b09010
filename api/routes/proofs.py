"""The Merkle tree over the log, for anyone to check (docs/merkle.md): its C2SP checkpoint,
inclusion and consistency proofs, witnesses' cosignatures, and a posture answer that carries
its own proof (checked offline by `chipledger verify --certificate`). A tree that does not
extend the last signed checkpoint (TreeRefusedError) and a bad size (ProofRequestError) are
answered by api/errors.py."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Certify, FirmMoment, Postures, Prove, Publisher, Reader, Witness
from api.problems import Problem, field_errors, invalid
from api.routes.firms import read_posture
from domain.errors import FieldProblem
from infra.merkle.publish import CosignatureRefusedError, Published

router = APIRouter(prefix="/v1", tags=["audit"])
Size = Annotated[int, Query(ge=1, le=2**63 - 1)]
MAX_NOTE_BYTES = 64 * 1024


@router.get("/integrity/checkpoint", name="read_tree_checkpoint",
            response_class=PlainTextResponse)
async def read_checkpoint(_: Reader, publisher: Publisher,
                          published: bool = False) -> PlainTextResponse:
    """The latest C2SP checkpoint with the cosignatures it has (signing the tree first if it
    grew); with `published=true`, the latest one the witness policy's quorum cosigned."""
    if not published:
        return _note(await run_in_threadpool(publisher.latest))
    found = await run_in_threadpool(publisher.latest_published)
    if found is None:
        raise Problem(404, "Not found", "no checkpoint has the witnesses' quorum yet")
    return _note(found)


def _note(published: Published) -> PlainTextResponse:
    return PlainTextResponse(published.note, headers={
        "Chipledger-Tree-Size": str(published.signed.size),
        "Chipledger-Witnesses": ",".join(published.witnesses),
        "Chipledger-Published": "true" if published.published else "false"})


@router.get("/integrity/proofs/inclusion", name="read_inclusion_proof")
async def read_inclusion(_: Reader, prover: Prove, position: Size,
                         tree_size: Size) -> dict[str, Any]:
    answer: dict[str, Any] = await run_in_threadpool(prover.inclusion, position, tree_size)
    return answer


@router.get("/integrity/proofs/consistency", name="read_consistency_proof")
async def read_consistency(_: Reader, prover: Prove, from_size: Size,
                           to_size: Size) -> dict[str, Any]:
    answer: dict[str, Any] = await run_in_threadpool(prover.consistency, from_size, to_size)
    return answer


@router.post("/integrity/cosignatures", name="add_cosignature",
             response_class=PlainTextResponse)
async def add_cosignature(request: Request, _: Witness,
                          publisher: Publisher) -> PlainTextResponse:
    """A witness's cosigned checkpoint (text/plain: the note with its cosignature lines)."""
    body = await request.body()
    try:
        if len(body) > MAX_NOTE_BYTES:
            raise CosignatureRefusedError(f"a checkpoint note is at most {MAX_NOTE_BYTES} bytes")
        kept = await run_in_threadpool(publisher.add_cosignature, body.decode("utf-8"))
    except (CosignatureRefusedError, UnicodeDecodeError) as refused:
        raise invalid(field_errors([FieldProblem((), str(refused))])) from None
    return _note(kept)


@router.get("/firms/{firm_id}/posture/certificate", name="read_posture_certificate")
async def read_certificate(firm_id: str, principal: Reader, service: Postures,
                           moment: FirmMoment, certifier: Certify) -> dict[str, Any]:
    """The posture, its evidence events, their inclusion proofs and the signed checkpoint."""
    answer = await read_posture(firm_id, principal, service, moment, certifier)
    document: dict[str, Any] = await run_in_threadpool(certifier.certificate, answer)
    return document
