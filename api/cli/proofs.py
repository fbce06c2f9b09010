"""The commands an outside party runs against the Merkle tree: `chipledger witness` (check a
ledger's new checkpoint against the last one accepted, cosign it, post the cosignature),
`chipledger witness-key` (make a witness's key), and the check behind `verify --certificate`
(a posture certificate, offline)."""

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from api.cli.app import cli
from infra.merkle.certificate import verify_certificate
from infra.merkle.cosignature import cosign
from infra.merkle.note import NoteError
from infra.merkle.witness import (
    WitnessRefusedError,
    WitnessState,
    accept,
    accepted,
    new_witness_key,
    read_witness_key,
    witness_key_text,
)

API_KEY_VARIABLE = "CHIPLEDGER_API_KEY"


def _fail(message: str, code: int = 1) -> typer.Exit:
    print(message, file=sys.stderr)
    return typer.Exit(code)


def verify_certificate_file(path: Path, public_key: str | None) -> None:
    """Exit 0 if every evidence event of the certificate is in the log its checkpoint
    commits to and the log's key signed that checkpoint; 1 otherwise."""
    if public_key is None:
        raise _fail("--certificate needs --public-key: the log's key (the note_verifier_key "
                    "or public_key of GET /v1/integrity/public-key), or a file holding it", 2)
    key = _file_or_text(public_key)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise _fail(f"MISMATCH: {path} is not JSON: {error}") from None
    check = verify_certificate(document, key)
    if not check.ok or check.checkpoint is None:
        for problem in check.problems:
            print(f"MISMATCH: {problem}")
        raise typer.Exit(1)
    print(f"ok: {check.events} evidence events are in the log {check.checkpoint.origin} "
          f"committed to at size {check.checkpoint.size}, signed by its key")


@cli.command()
def witness(
    ledger: Annotated[str, typer.Option("--ledger", help="the ledger's base URL")],
    state: Annotated[Path, typer.Option("--state", help="this witness's state file (the last "
                                        "checkpoint it accepted); created on the first run")],
    key: Annotated[Path, typer.Option("--key", exists=True, dir_okay=False,
                                      help="this witness's key (chipledger witness-key)")],
    log_key: Annotated[str | None, typer.Option(
        "--log-key", help="the log's note verifier key, to pin on the first run (default: "
        "the ledger's GET /v1/integrity/public-key, trusted on first use)")] = None,
) -> None:
    """Cosign the ledger's checkpoint if it is consistent with the last one accepted. Exits 1,
    cosigning nothing, if it is not (a rewritten or forked log). The API key (role witness or
    admin) is read from CHIPLEDGER_API_KEY."""
    try:
        signer = read_witness_key(key.read_text())
    except NoteError as error:
        raise _fail(f"--key: {error}", 2) from None
    headers = {"Authorization": f"Bearer {os.environ.get(API_KEY_VARIABLE, '')}"}
    with httpx.Client(base_url=ledger.rstrip("/"), headers=headers, timeout=30) as http:
        try:
            held = WitnessState.load(state) or WitnessState(log_key or _pinned_key(http))
            note = _get(http, "/v1/integrity/checkpoint").text
            checkpoint = accept(held, note, lambda m, n: _consistency(http, m, n))
            line = cosign(checkpoint.body(), signer).line()
            posted = http.post("/v1/integrity/cosignatures", content=note + line,
                               headers={"Content-Type": "text/plain; charset=utf-8"})
        except WitnessRefusedError as refusal:
            raise _fail(f"REFUSED: {refusal}; nothing cosigned") from None
        except (httpx.HTTPError, NoteError, ValueError) as error:
            raise _fail(f"failed: {error}") from None
    if posted.status_code != 200:
        raise _fail(f"failed: the ledger refused the cosignature ({posted.status_code}): "
                    f"{posted.text}")
    accepted(held, checkpoint, note).save(state)
    print(f"cosigned {checkpoint.origin} at size {checkpoint.size} as {signer.name}")


@cli.command("witness-key")
def witness_key(
    name: Annotated[str, typer.Option("--name", help="the witness's name, e.g. its domain")],
    key: Annotated[Path, typer.Option("--key", help="where to write the private key")],
) -> None:
    """Make a witness key; print its verifier key (for CHIPLEDGER_WITNESS_KEYS)."""
    try:
        signer = new_witness_key(name)
    except NoteError as error:
        raise _fail(f"--name: {error}", 2) from None
    descriptor = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(witness_key_text(signer))
    print(signer.vkey())


def _file_or_text(value: str) -> str:
    try:
        return Path(value).read_text() if Path(value).is_file() else value
    except (OSError, ValueError):  # a key's text is no file name: too long, a NUL in it
        return value


def _pinned_key(http: httpx.Client) -> str:
    return str(_get(http, "/v1/integrity/public-key").json()["note_verifier_key"])


def _consistency(http: httpx.Client, first: int, second: int) -> list[bytes]:
    answer = _get(http, "/v1/integrity/proofs/consistency",
                  {"from_size": first, "to_size": second}).json()
    return [bytes.fromhex(h) for h in answer["hashes"]]


def _get(http: httpx.Client, path: str, params: dict[str, int] | None = None) -> httpx.Response:
    response = http.get(path, params=params)
    response.raise_for_status()
    return response
