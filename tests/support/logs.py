"""Test helpers that write a log in commits of many sizes, and edit it behind its guards."""

import itertools
import json
import sqlite3
from typing import Any

import psycopg

from api.appends import parse_batch_line
from bench.synthetic import ledger
from domain.aggregates import AGGREGATES
from domain.kinds import Role
from infra.bootstrap import Container
from infra.keys import command_line_user
from infra.seal import Submission, canonical_bytes, chain_hash
from infra.service import AppendService
from tests.support.data import TEST_WRITER

# Single events, pages' worth and odd sizes, so commits straddle any page boundary.
COMMIT_SIZES = (1, 40, 3, 7, 14, 2)


def synthetic_lines(count: int) -> list[dict[str, Any]]:
    """`count` batch lines of the benches' synthetic ledger (which ends whole stories)."""
    return list(ledger(count))[:count]


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


def save_unchecked(container: Container, kind: str, record_id: str, role: Role,
                   data: dict[str, Any]) -> int:
    """Record an event as an older version without today's validation might have: through
    the Ledger and its sealing recorder, past the bodies' and the records' checks. Answers
    the event's position."""
    aggregates = AGGREGATES[kind]
    if role is Role.CREATE:
        record = aggregates.open(record_id, data)
    else:
        record = container.ledger.get_record(kind, record_id)
        record.trigger_event(record._event_class(role), record_id=record_id, data=data)
    container.ledger.save(record, submissions=[Submission(TEST_WRITER, lambda _: None, 0)])
    head = container.store.head()
    assert head is not None
    return head.position


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


def rehash_from(container: Container, position: int, old: bytes, new: bytes) -> None:
    """As the database owner, behind the triggers: replace `old` by `new` in the stored state
    of the event at `position`, and rehash the chain from there to the head, as a forger who
    knows the algorithm would. The log then verifies on its own: only a checkpoint says it
    changed."""
    d = container.store.dialect
    entries = list(container.store.iter_entries(after=position - 1))
    assert entries
    assert entries[0].position == position
    assert old in entries[0].state
    state = entries[0].state.replace(old, new)
    literal = f"X'{state.hex()}'" if container.settings.backend == "sqlite" else \
        f"decode('{state.hex()}', 'hex')"
    statements = [f"UPDATE {d.events_table} SET state = {literal} WHERE {d.events_id} = "
                  f"(SELECT notification_id FROM {d.seals_table} WHERE position = {position})"]
    prev = entries[0].prev_hash
    for entry in entries:
        digest = chain_hash(prev, canonical_bytes(
            position=entry.position, recorded_at=entry.recorded_at,
            recorded_by=entry.recorded_by, originator_id=entry.originator_id,
            originator_version=entry.originator_version,
            topic=entry.topic, state=state if entry.position == position else entry.state))
        statements.append(f"UPDATE {d.seals_table} SET prev_hash = '{prev}', hash = "
                          f"'{digest}' WHERE position = {entry.position}")
        prev = digest
    run_sql(container.settings.database_url, statements, owner_bypass=True)
