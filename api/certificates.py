"""GET /v1/firms/{id}/posture/certificate: a posture answer that carries its own proof,
checkable offline with `chipledger verify --certificate FILE --public-key KEY`
(infra.merkle.certificate)."""

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from api.auth import Reader
from api.posture import read_posture
from api.proofs import unrefused
from api.reads import AsOf, KnownAt
from infra.merkle.certify import Certifier


async def read_certificate(request: Request, firm_id: str, principal: Reader,
                           as_of: AsOf = None, known_at: KnownAt = None) -> dict[str, Any]:
    """The posture, its evidence events, their inclusion proofs and the signed checkpoint."""
    answer = await read_posture(request, firm_id, principal, as_of, known_at)
    certifier: Certifier = request.app.state.certifier
    document: dict[str, Any] = await run_in_threadpool(unrefused, certifier.certificate,
                                                       answer)
    return document


def install(app: FastAPI) -> None:
    router = APIRouter(prefix="/v1/firms", tags=["posture"])
    router.add_api_route("/{firm_id}/posture/certificate", read_certificate, methods=["GET"],
                         name="read_posture_certificate")
    app.include_router(router)



