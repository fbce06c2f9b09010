"""`chipledger verify`: the hash chain, a kept checkpoint, or an export bundle offline."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from api.cli.app import _start, cli, err
from api.cli.proofs import verify_certificate_file
from infra.bundle import BundleError, verify_bundle
from infra.checkpoints import Checkpoint, Extension, read_public_key, verify_extends
from infra.service import verify_log


@cli.command()
def verify(
    against: Annotated[Path | None, typer.Option(
        "--against", exists=True, dir_okay=False,
        help="an earlier checkpoint (JSON): prove the log extends it")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", exists=True, dir_okay=False,
        help="verify an export bundle offline, without any database")] = None,
    public_key: Annotated[str | None, typer.Option(
        "--public-key", help="the service's public key, to trust for checkpoints: a file or "
        "the text itself, as PEM, base64 of the raw key, or the JSON of GET "
        "/v1/integrity/public-key")] = None,
    trust_embedded_key: Annotated[bool, typer.Option(
        "--trust-embedded-key", help="trust the key a checkpoint carries (without "
        "--public-key, a checkpoint is otherwise reported unverified)")] = False,
    certificate: Annotated[Path | None, typer.Option(
        "--certificate", exists=True, dir_okay=False,
        help="check a posture certificate offline, against --public-key")] = None,
) -> None:
    """Recompute the hash chain. Exits 1 and names the first bad position on a mismatch; exits
    1 too when a checkpoint's signature was checked by no trusted key."""
    if certificate is not None:
        verify_certificate_file(certificate, public_key)
        return
    trust = _trust(public_key, trust_embedded_key)
    earlier = _earlier_checkpoint(against)
    if file is not None:
        _verify_bundle(file, trust, earlier)
        return
    container = _start()
    try:
        if earlier is not None:
            extension = verify_extends(container.store.iter_entries(), earlier, trust.public)
            result = extension.chain
        else:
            extension, result = None, verify_log(container.store)
    finally:
        container.close()
    if extension is not None and earlier is not None:
        _report_extension(extension, earlier, trust)
    if result.ok:
        extends = f"; extends checkpoint {earlier.position}, signed by " \
            f"{trust.signer(earlier.key_id)}" if earlier else ""
        print(f"ok: verified {result.verified_through} events; head hash "
              f"{result.head_hash}{extends}")
        return
    print(f"MISMATCH at position {result.first_mismatch}: {result.reason} "
          f"(verified through {result.verified_through})")
    raise typer.Exit(1)


@dataclass(frozen=True)
class Trust:
    """What a checkpoint's signature is checked by: a key the auditor gave, or (by choice) the
    key embedded in the checkpoint, or nothing trusted."""

    public: bytes | None
    embedded: bool

    @property
    def trusted(self) -> bool:
        return self.public is not None or self.embedded

    def signer(self, key_id: str) -> str:
        if self.public is not None:
            return f"the trusted key {key_id}"
        return f"the key {key_id} embedded in it (trusted: --trust-embedded-key)"

    def unverified(self, what: str, key_id: str) -> str:
        return (f"UNVERIFIED: {what}, but its signature was checked only by the key embedded "
                f"in it ({key_id}), which whoever wrote it chose: pass the service's key with "
                "--public-key (GET /v1/integrity/public-key), or --trust-embedded-key")


def _trust(public_key: str | None, trust_embedded_key: bool) -> Trust:
    if public_key is not None and trust_embedded_key:
        err.print("give --public-key or --trust-embedded-key, not both", soft_wrap=True)
        raise typer.Exit(2)
    try:
        public = read_public_key(public_key) if public_key is not None else None
    except ValueError as error:
        err.print(f"--public-key: not an Ed25519 public key: {error}", soft_wrap=True,
                  markup=False)
        raise typer.Exit(2) from None
    return Trust(public, trust_embedded_key)


def _earlier_checkpoint(against: Path | None) -> Checkpoint | None:
    try:
        return Checkpoint.from_json(json.loads(against.read_text())) if against else None
    except (ValueError, KeyError, TypeError) as error:
        err.print(f"{against}: not a chipledger checkpoint (JSON with position, hash, "
                  f"recorded_at, signed_at, key_id, public_key, signature): {error}")
        raise typer.Exit(2) from None


def _report_extension(extension: Extension, earlier: Checkpoint, trust: Trust) -> None:
    """Exit 1 unless the log extends `earlier` and its signature was checked by trust."""
    if not extension.ok:
        print(f"MISMATCH against checkpoint at position {extension.checkpoint_position}: "
              f"{extension.reason}")
        raise typer.Exit(1)
    if not trust.trusted:
        print(trust.unverified(f"the log extends checkpoint {earlier.position}",
                               earlier.key_id))
        raise typer.Exit(1)


def _verify_bundle(file: Path, trust: Trust, earlier: Checkpoint | None) -> None:
    try:
        result = verify_bundle(file, trusted_public=trust.public, against=earlier,
                               trust_embedded=trust.embedded)
    except BundleError as error:
        print(f"NOT A BUNDLE: {error}")
        raise typer.Exit(1) from None
    if not result.ok:
        for problem in result.problems:
            print(f"MISMATCH: {problem}")
        raise typer.Exit(1)
    holds = f"{file} holds {result.entries} events, chain intact"
    if result.checkpoint is None:
        print(f"UNVERIFIED: {holds}, but it carries no signed checkpoint: nothing says who "
              "wrote it")
        raise typer.Exit(1)
    if not result.key_trusted:
        print(trust.unverified(holds, result.checkpoint.key_id))
        raise typer.Exit(1)
    print(f"ok: {holds}, signed checkpoint ok, by {trust.signer(result.checkpoint.key_id)}")
