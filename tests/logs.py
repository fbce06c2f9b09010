"""Test helpers that write a log in commits of many sizes, and edit it behind its guards."""

import itertools
import json
import sqlite3
from typing import Any

import psycopg

from api.appends import parse_batch_line
from infra.bootstrap import Container
from infra.keys import command_line_user
from infra.service import AppendService

# Single events, pages' worth and odd sizes, so commits straddle any page boundary.
COMMIT_SIZES = (1, 40, 3, 7, 14, 2)


def append_in_commits(container: Container, lines: list[dict[str, Any]],
                      sizes: tuple[int, ...] = COMMIT_SIZES) -> None:
    """Append batch lines as a series of commits, their sizes cycling through `sizes`."""
    service = AppendService(container)
    sender = command_line_user()
    cycle = itertools.cycle(sizes)
    while lines:
        size = next(cycle)
        batch, lines = lines[:size], lines[size:]
        service.append([parse_batch_line(json.dumps(line), n)
                        for n, line in enumerate(batch, 1)], recorded_by=sender, batch=True)


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def _pg(url: str) -> tuple[str, str]:
    base, _, query = url.partition("?")
    return base, dict(p.split("=") for p in query.split("&"))["schema"]


def run_sql(database_url: str, statements: list[str], *, owner_bypass: bool = False) -> None:
    """Run statements on a plain connection; as the owner, with the triggers out of the way."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(_sqlite_path(database_url))
        try:
            saved = []
            if owner_bypass:
                saved = [r[0] for r in conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type='trigger'")]
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"
                                            ).fetchall():
                    conn.execute(f"DROP TRIGGER {name}")
            for statement in statements:
                conn.execute(statement)
            for sql in saved:
                conn.execute(sql)
            conn.commit()
        finally:
            conn.close()
        return
    base, schema = _pg(database_url)
    with psycopg.connect(base, autocommit=False) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        if owner_bypass:  # superuser only: skips triggers for this session
            conn.execute("SET session_replication_role = replica")
        for statement in statements:
            conn.execute(statement)
        conn.commit()




def tamper(database_url: str, statement: str) -> None:
    """One statement as the owner, past the append-only triggers."""
    run_sql(database_url, [statement], owner_bypass=True)
