"""The table registry (infra.schema) is what both backends create: the same tables, columns,
keys and indexes, read back from the databases themselves (information_schema, PRAGMA)."""

from pathlib import Path
from typing import Any

from infra.bootstrap import Container, bootstrap
from infra.postgres import TYPES as POSTGRES_TYPES
from infra.schema import TABLES, Table
from infra.settings import Settings
from infra.sqlite import TYPES as SQLITE_TYPES
from tests.support.databases import database_for

# A table as a database describes it: columns in order, each (name, type, nullable), its
# primary key's columns, its indexes' names and the operations its triggers refuse.
Described = dict[str, Any]


def _postgres(container: Container) -> dict[str, Described]:
    schema = container.store.dialect.schema  # type: ignore[attr-defined]
    rows = _query(container, "SELECT c.table_name AS t, c.column_name AS c, c.data_type AS type, "
                  "c.is_nullable = 'YES' AS null FROM information_schema.columns c "
                  "WHERE c.table_schema = %s ORDER BY c.table_name, c.ordinal_position", schema)
    keys = _query(container, "SELECT u.table_name AS t, u.column_name AS c FROM "
                  "information_schema.table_constraints k JOIN "
                  "information_schema.key_column_usage u USING (constraint_schema, "
                  "constraint_name) WHERE k.constraint_type = 'PRIMARY KEY' AND "
                  "k.table_schema = %s ORDER BY u.ordinal_position", schema)
    indexes = _query(container, "SELECT tablename AS t, indexname AS i FROM pg_indexes "
                     "WHERE schemaname = %s AND indexname NOT LIKE '%%_pkey' AND "
                     "indexname NOT LIKE '%%_key'", schema)
    # pg_trigger, not information_schema.triggers, which leaves TRUNCATE triggers out; the
    # bits of tgtype say which operations fire it (8 DELETE, 16 UPDATE, 32 TRUNCATE).
    triggers = _query(container, "SELECT c.relname AS t, o.op FROM pg_trigger g JOIN pg_class c "
                      "ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace JOIN "
                      "(VALUES (8, 'DELETE'), (16, 'UPDATE'), (32, 'TRUNCATE')) o(bit, op) ON "
                      "g.tgtype & o.bit <> 0 WHERE n.nspname = %s AND NOT g.tgisinternal",
                      schema)
    types = {"timestamp with time zone": "timestamptz"}
    return _described(
        [(r["t"], r["c"], types.get(r["type"], r["type"]), r["null"]) for r in rows],
        keys, indexes, triggers)


def _sqlite(container: Container) -> dict[str, Described]:
    names = [r["name"] for r in _query(container, "SELECT name FROM sqlite_master WHERE "
                                       "type = 'table'")]
    columns, keys = [], []
    for table in names:
        info = _query(container, f"PRAGMA table_info({table})")
        columns += [(table, r["name"], r["type"], not r["notnull"]) for r in info]
        keys += [{"t": table, "c": r["name"]} for r in sorted(info, key=lambda r: r["pk"])
                 if r["pk"]]
    indexes = _query(container, "SELECT tbl_name AS t, name AS i FROM sqlite_master WHERE "
                     "type = 'index' AND name NOT LIKE 'sqlite_autoindex%'")
    triggers = [{"t": r["t"], "op": r["name"].rsplit("_", 1)[-1].upper()} for r in _query(
        container, "SELECT tbl_name AS t, name FROM sqlite_master WHERE type = 'trigger'")]
    return _described(columns, keys, indexes, triggers)


def _query(container: Container, statement: str, *params: Any) -> list[Any]:
    dialect = container.store.dialect
    with dialect.transaction(commit=False) as cursor:
        cursor.execute(dialect.sql(statement), params)
        return list(cursor.fetchall())


def _described(columns: list[tuple[str, str, str, bool]], keys: list[Any], indexes: list[Any],
               triggers: list[Any]) -> dict[str, Described]:
    found: dict[str, Described] = {}
    for table, name, type_, null in columns:
        entry = found.setdefault(table, {"columns": [], "key": [], "indexes": set(),
                                         "refuses": set()})
        entry["columns"].append((name, type_, null))
    for row in keys:
        found[row["t"]]["key"].append(row["c"])
    for row in indexes:
        found[row["t"]]["indexes"].add(row["i"])
    for row in triggers:
        found[row["t"]]["refuses"].add(row["op"])
    return found


def _expected(table: Table, backend: str, types: dict[str, str]) -> Described:
    """The registry's table as `backend` should hold it. A key column is not null on
    PostgreSQL; SQLite reports one as nullable unless declared NOT NULL, which the
    registry's one-column keys are not."""
    composite = len(table.key) > 1
    return {
        "columns": [(c.name, types[c.type], c.null or (backend == "sqlite" and not composite
                                                       and table.key == (c.name,)))
                    for c in table.columns],
        "key": list(table.key),
        "indexes": {table.index_name(i) for i in table.indexes if i.only in (None, backend)},
        "refuses": ({"UPDATE", "DELETE", *(["TRUNCATE"] if backend == "postgres" else [])}
                    if table.append_only else set()),
    }


def _ours(found: dict[str, Described]) -> dict[str, Described]:
    return {name: table for name, table in found.items() if name.startswith("chipledger_")}


def _described_by(container: Container) -> dict[str, Described]:
    backend = container.settings.backend
    return _ours(_sqlite(container) if backend == "sqlite" else _postgres(container))


def test_each_backend_creates_the_registry_tables(container: Container) -> None:
    backend = container.settings.backend
    types = SQLITE_TYPES if backend == "sqlite" else POSTGRES_TYPES
    found = _described_by(container)
    assert found == {t.name: _expected(t, backend, types) for t in TABLES}  # type: ignore[arg-type]


def test_the_library_events_table_refuses_edits_on_each_backend(container: Container) -> None:
    backend = container.settings.backend
    events = container.store.dialect.events_table.split(".")[-1].strip('"')
    found = (_sqlite(container) if backend == "sqlite" else _postgres(container))[events]
    assert found["refuses"] >= {"UPDATE", "DELETE"}


def test_both_backends_create_the_same_tables_and_columns(tmp_path: Path) -> None:
    """The same table names, column names in the same order, the same nullability outside
    the keys, the same keys, and the same indexes but those one backend's planner needs."""
    described = {}
    for backend in ("sqlite", "postgres"):
        with database_for(backend, tmp_path) as url:
            container = bootstrap(Settings(database_url=url,
                                           signing_key_file=str(tmp_path / "key.pem")))
            try:
                described[backend] = _described_by(container)
            finally:
                container.close()
    shared = {t.index_name(i) for t in TABLES for i in t.indexes if i.only is None}
    assert _comparable(described["sqlite"], shared) == _comparable(described["postgres"],
                                                                   shared)
    assert set(described["sqlite"]) == {t.name for t in TABLES}


def _comparable(found: dict[str, Described], shared: set[str]) -> dict[str, Any]:
    return {name: ([(c, null) for c, _, null in t["columns"] if c not in t["key"]],
                   [c for c, _, _ in t["columns"]], t["key"], t["indexes"] & shared,
                   {"UPDATE", "DELETE"} & t["refuses"])
            for name, t in found.items()}
