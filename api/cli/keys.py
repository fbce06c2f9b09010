"""`chipledger keys create|list|revoke`: API keys."""

from typing import Annotated

import typer

from api.cli.app import _start, err, keys
from infra.keys import KEY_CACHE_SECONDS, KeyRing, Role
from infra.seal import format_time


@keys.command("create")
def keys_create(
    role: Annotated[Role, typer.Option(help="reader, writer, auditor or admin")],
    name: Annotated[str, typer.Option(help="a label for the key")] = "",
) -> None:
    """Create an API key. The key is printed once, alone on the last line."""
    container = _start()
    try:
        key_id, key = KeyRing(container.store).create(role, name)
    finally:
        container.close()
    err.print(f"created {role.value} key {key_id}; store it now, it is not shown again")
    print(key)


@keys.command("list")
def keys_list() -> None:
    """Every API key: id, role, created, revoked, name (never the key or its hash)."""
    container = _start()
    try:
        rows = KeyRing(container.store).all_keys()
    finally:
        container.close()
    print(f"{'KEY ID':<10} {'ROLE':<8} {'CREATED':<27} {'REVOKED':<27} NAME")
    for row in rows:
        revoked = format_time(row.revoked_at) if row.revoked_at else "-"
        print(f"{row.key_id:<10} {row.role:<8} {format_time(row.created_at):<27} "
              f"{revoked:<27} {row.name}")


@keys.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id, as `keys list` shows it")],
) -> None:
    """Revoke an API key: servers refuse it within their 5 s key cache."""
    container = _start()
    try:
        row = KeyRing(container.store).revoke(key_id)
    finally:
        container.close()
    if row is None:
        err.print(f"no API key has the id {key_id!r}; `chipledger keys list` shows them",
                  soft_wrap=True, markup=False)
        raise typer.Exit(1)
    assert row.revoked_at is not None
    print(f"revoked {row.role} key {row.key_id} ({row.name}) at {format_time(row.revoked_at)}; "
          f"servers refuse it within {KEY_CACHE_SECONDS:g} s")
