"""Fresh databases of either backend for tests: a SQLite file, or a PostgreSQL schema of its own.

PostgreSQL tests need CHIPLEDGER_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test).
Without it they skip, saying why; with CHIPLEDGER_REQUIRE_POSTGRES=1 (as in CI) they fail.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

POSTGRES_URL = os.environ.get("CHIPLEDGER_TEST_POSTGRES_URL", "")
REQUIRE_POSTGRES = os.environ.get("CHIPLEDGER_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgres"]


def postgres_schema_url(schema: str) -> str:
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}schema={schema}"


def _admin_url() -> str:
    return POSTGRES_URL.split("?")[0]


@contextmanager
def database_for(backend: str, directory: Path) -> Iterator[str]:
    """A fresh database of `backend`: a SQLite file in `directory`, or a PostgreSQL schema
    dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'ledger.db'}"
        return
    if not POSTGRES_URL:
        reason = "PostgreSQL tests need CHIPLEDGER_TEST_POSTGRES_URL"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (CHIPLEDGER_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield postgres_schema_url(schema)
    finally:
        with psycopg.connect(_admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
