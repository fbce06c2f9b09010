"""The query plans of the point-in-time reads, on an existing ledger (issue #6).

For a random firm and a random record at a random moment, the reads the API serves (record
as of, posture, residency, timeline, restatements, and the all-firms reads) run as they
would, and every SELECT they send is explained first: EXPLAIN (ANALYZE, BUFFERS) on
PostgreSQL, EXPLAIN QUERY PLAN on SQLite. The statements are caught at the cursor rather than
copied here, so the plans are those of the SQL the services really send. A plan is flagged
when it scans a large table whole, or reads (or sorts) many more rows than a point-in-time
read should.
"""

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, TypeVar

from infra.bootstrap import Container, bootstrap
from infra.posture import posture_service
from infra.settings import Settings
from infra.store import Cursor, Dialect
from projections.records import ReadService
from projections.views import Moment

LARGE_TABLE = 10_000  # rows: a whole scan of a bigger table is flagged
MANY_ROWS = 5_000  # rows read or sorted by one plan node to answer for one firm or record
AS_OF_FROM, AS_OF_TO = date(2022, 1, 1), date(2026, 6, 30)
T = TypeVar("T")


@dataclass
class Explained:
    read: str
    statement: str
    plan: list[str]
    problems: list[str]
    runs: int = 1
    rows: int = 0  # the most any run returned

    def verdict(self) -> list[str]:
        """SQLite's plans say that a sort happens, not of how many rows: a sort with no LIMIT
        sorts what the statement returns, so it is judged once that is known."""
        sorts = [d for d in self.plan if d.startswith("USE TEMP B-TREE")]
        if sorts and self.rows > MANY_ROWS:
            return [*self.problems, f"{sorts[0]} of {self.rows:,} rows"]
        return self.problems


@dataclass
class Explainer:
    """Explains every SELECT sent through the dialect's transactions while `read` is set."""

    postgres: bool
    large: dict[str, int]
    read: str = ""
    seen: dict[tuple[str, str], Explained] = field(default_factory=dict)

    def wrap(self, cursor: Cursor) -> Cursor:
        return _ExplainingCursor(cursor, self)

    def explain(self, cursor: Cursor, statement: str, params: Any) -> Explained | None:
        if not self.read or not statement.lstrip().upper().startswith("SELECT"):
            return None
        key = (self.read, " ".join(statement.split()))
        if self.postgres:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement, params)
            tree = cursor.fetchone()["QUERY PLAN"][0]["Plan"]
            problems = self._postgres_problems(tree)
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
            plan = [row["QUERY PLAN"] for row in cursor.fetchall()]
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
            plan = [row["detail"] for row in cursor.fetchall()]
            problems = self._sqlite_problems(plan, key[1])
        known = self.seen.get(key)
        if known is None:
            known = self.seen[key] = Explained(self.read, key[1], plan, problems)
            return known
        known.runs += 1
        if problems and not known.problems:  # show the run that went wrong
            known.plan, known.problems = plan, problems
        return known

    def _postgres_problems(self, node: dict[str, Any]) -> list[str]:
        found = []
        loops = int(node.get("Actual Loops", 1))
        kept = int(node.get("Actual Rows", 0)) * loops
        removed = (int(node.get("Rows Removed by Filter", 0))
                   + int(node.get("Rows Removed by Index Recheck", 0))) * loops
        kind = node["Node Type"]
        relation = node.get("Relation Name", node.get("Index Name", ""))
        if kind == "Seq Scan" and self.large.get(relation, 0) > LARGE_TABLE:
            found.append(f"Seq Scan on {relation} ({self.large[relation]:,} rows)")
        elif removed > MANY_ROWS:
            found.append(f"{kind} on {relation} reads {kept + removed:,} rows to keep {kept:,}")
        elif kind in ("Index Scan", "Index Only Scan", "Bitmap Index Scan") and \
                kept > MANY_ROWS:
            found.append(f"{kind} on {relation} returns {kept:,} rows")
        if kind in ("Sort", "Incremental Sort") and kept > MANY_ROWS:
            found.append(f"{kind} of {kept:,} rows")
        for child in node.get("Plans", []):
            found += self._postgres_problems(child)
        return found

    def _sqlite_problems(self, plan: list[str], statement: str) -> list[str]:
        found = []
        for detail in plan:
            words = detail.split()
            if words[0] == "SCAN" and self.large.get(words[1], 0) > LARGE_TABLE:
                found.append(f"{detail} ({self.large[words[1]]:,} rows)")
            if detail.startswith("USE TEMP B-TREE") and " LIMIT " in statement.upper():
                found.append(f"{detail} before a LIMIT (of how many rows, unknown)")
        return found


class _ExplainingCursor:
    def __init__(self, cursor: Cursor, explainer: Explainer) -> None:
        self._cursor, self._explainer = cursor, explainer
        self._explained: Explained | None = None

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def execute(self, sql: Any, params: Any = None, /) -> Any:
        self._explained = self._explainer.explain(self._cursor, str(sql), params)
        return self._cursor.execute(sql, params) if params is not None \
            else self._cursor.execute(sql)

    def executemany(self, sql: Any, params: Any, /) -> Any:
        self._explained = None
        return self._cursor.executemany(sql, params)

    def fetchone(self) -> Any:
        return self._returned([self._cursor.fetchone()])[0]

    def fetchall(self) -> Any:
        return self._returned(self._cursor.fetchall())

    def _returned(self, rows: Any) -> Any:
        if self._explained is not None:
            self._explained.rows = max(self._explained.rows, len(rows))
        return rows


def main(url: str, seed: int | None = None) -> None:
    container = bootstrap(Settings(database_url=url))
    try:
        _explain_reads(container, random.Random(seed))
    finally:
        container.close()


def _explain_reads(container: Container, rng: random.Random) -> None:
    store = container.store
    dialect = store.dialect
    postgres = container.settings.backend == "postgres"
    for table in refresh_statistics(container):
        print(f"analyzed {table} (statistics missing or stale: autovacuum has not run on it)")
    large = _table_sizes(container)
    head, first = store.head(), store.entries(after=0, limit=1)
    if head is None or not first:
        raise SystemExit("the ledger is empty: build one with python -m bench build")
    span = (head.recorded_at - first[0].recorded_at).total_seconds()
    known_at = first[0].recorded_at + timedelta(seconds=rng.uniform(span / 2, span))
    known_from = first[0].recorded_at + timedelta(seconds=rng.uniform(0, span / 2))
    as_of = AS_OF_FROM + timedelta(days=rng.randint(0, (AS_OF_TO - AS_OF_FROM).days))
    firm_id = rng.choice(_firms_with_findings(container))
    record = store.entries(after=rng.randrange(head.position), limit=1)[0]
    record_known_at = max(known_at, record.recorded_at)
    print(f"ledger: {head.position:,} events; "
          + ", ".join(f"{t} {n:,} rows" for t, n in large.items()))
    print(f"firm {firm_id}, as_of {as_of}, known_at {known_at.isoformat()}, "
          f"known_from {known_from.isoformat()}; record {record.kind} {record.record_id}\n")

    explainer = Explainer(postgres, large)
    posture = posture_service(container)
    reads = ReadService(container.store)
    with _explaining(dialect, explainer):
        moment = _during(explainer, "moment", lambda: posture.reading(Moment(as_of, known_at)))
        _during(explainer, "record as of",
                lambda: reads.record(record.kind, record.record_id,
                                    Moment(as_of, record_known_at)))
        _during(explainer, "posture", lambda: (posture.check_firm(firm_id, moment),
                                               posture.posture(firm_id, moment)))
        _during(explainer, "residency", lambda: posture.residency(firm_id, moment))
        _during(explainer, "timeline",
                lambda: posture.timeline(firm_id, moment.position, None, None))
        after = _during(explainer, "restatements", lambda: store.position_at(known_from))
        _during(explainer, "restatements",
                lambda: posture.restatements(firm_id, after, moment.position))
        # The statements of all_postures and firm_facts, without all_postures' judging of
        # every firm, which is a matter of Python, not of plans (and slow: see the report).
        _during(explainer, "all firms (GET /v1/posture, /v1/firms)",
                lambda: (posture.findings.findings(position=moment.position, day=as_of),
                         posture.firm_facts(moment)))

    bad = 0
    for explained in explainer.seen.values():
        runs = f" (run {explained.runs:,} times)" if explained.runs > 1 else ""
        problems = explained.verdict()
        verdict = "BAD: " + "; ".join(problems) if problems else "ok"
        print(f"== {explained.read}{runs}: {verdict}")
        print(f"   {explained.statement}")
        for line in explained.plan:
            print(f"   | {line}")
        print()
        bad += bool(problems)
    print(f"{len(explainer.seen)} statements explained, {bad} flagged")


def _during(explainer: Explainer, read: str, call: Callable[[], T]) -> T:
    explainer.read = read
    try:
        return call()
    finally:
        explainer.read = ""


@contextmanager
def _explaining(dialect: Dialect, explainer: Explainer) -> Iterator[None]:
    """Route the dialect's transactions through the explaining cursor (instance attribute,
    so only this dialect is touched)."""
    plain = dialect.transaction

    @contextmanager
    def transaction(*, commit: bool) -> Iterator[Cursor]:
        with plain(commit=commit) as cursor:
            yield explainer.wrap(cursor)

    dialect.transaction = transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        del dialect.transaction


def refresh_statistics(container: Container) -> list[str]:
    """ANALYZE the tables whose statistics PostgreSQL lacks or has outgrown, by autovacuum's
    default rule (50 rows and a tenth of the table changed). Autovacuum would do it within a
    minute of a bulk load; where it is off (as on some test servers) or has not run yet, the
    planner guesses from nothing, and the plans and timings measured would not be those of a
    running service."""
    if container.settings.backend != "postgres":
        return []
    dialect = container.store.dialect
    schema = getattr(dialect, "schema", "public")
    with dialect.transaction(commit=True) as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = %s AND n_live_tup > 0 "
            "AND (last_analyze IS NULL AND last_autoanalyze IS NULL "
            "OR n_mod_since_analyze > 50 + 0.1 * n_live_tup) ORDER BY relname", (schema,))
        tables = [str(row["relname"]) for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(f'ANALYZE "{schema}"."{table}"')
    return tables


def _table_sizes(container: Container) -> dict[str, int]:
    """Rows of the tables point-in-time reads touch, by the names plans give them."""
    d = container.store.dialect
    sizes = {}
    with d.transaction(commit=False) as cursor:
        for table in (d.events_table, d.seals_table, d.findings_table, d.residency_table):
            cursor.execute(f"SELECT count(*) AS n FROM {table}")
            sizes[table.split(".")[-1].strip('"')] = int(cursor.fetchone()["n"])
    return sizes


def _firms_with_findings(container: Container) -> list[str]:
    d = container.store.dialect
    with d.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT DISTINCT firm_id FROM {d.findings_table} ORDER BY firm_id")
        firms = [str(row["firm_id"]) for row in cursor.fetchall()]
    if not firms:
        raise SystemExit("no findings: catch the projection up first (python -m bench posture)")
    return firms
