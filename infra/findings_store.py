"""The findings table and the projection's tracking row, on either backend.

Every batch the runner takes is written in one transaction together with the tracking row,
and the tracking row moves only from the position this runner last saw: a second runner on
the same database (another process) cannot double-apply a batch.
"""

import json
from collections.abc import Iterable
from datetime import date
from typing import Any

from domain.errors import Conflict
from domain.evaluator import Finding, ProcessingPiece
from domain.types import Status
from domain.world import SubjectRef
from infra.alarms import Alarms
from infra.dialect import Cursor, Dialect
from infra.schema import FINDINGS, RESIDENCY
from projections.findings import Commit, OpenFinding, OpenPiece, subject_key, subject_of_key

# The alarms' component for subjects the projection could not evaluate.
PROJECTION_ALARMS = "projection"

# The columns each read model writes and reads, in the registry's order (infra.schema).
_FINDING_TYPES = FINDINGS.typed()
_PIECE_TYPES = RESIDENCY.typed()
_COLUMNS = ", ".join(c.name for c in _FINDING_TYPES)
_PIECE_COLUMNS = ", ".join(c.name for c in _PIECE_TYPES)
# What closing a row sets, and the key that finds it.
_CLOSE = FINDINGS.typed("recorded_to_position", "recorded_to")
_FINDING_KEY = FINDINGS.typed(*FINDINGS.key)
_PIECE_KEY = RESIDENCY.typed(*RESIDENCY.key)


class TrackingConflictError(Conflict):
    """Another runner moved the projection on: this one must reload and start again."""


class FindingsStore:
    def __init__(self, dialect: Dialect, alarms: Alarms | None = None) -> None:
        self.dialect = dialect
        self.alarms = alarms or Alarms(dialect)
        self.table = dialect.findings_table
        self.pieces_table = dialect.residency_table

    def _rows(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.sql(statement), params)
            return list(cursor.fetchall())

    def tracking(self, name: str) -> int:
        rows = self._rows(f"SELECT position FROM {self.dialect.tracking_table} WHERE name = %s",
                          (name,))
        return int(rows[0]["position"]) if rows else 0

    def last_announced(self) -> int:
        """The position of the last commit with messages in the outbox (0: none)."""
        rows = self._rows(f"SELECT max(position) AS p FROM {self.dialect.outbox_table}")
        return int(rows[0]["p"] or 0) if rows else 0

    def open_findings(self) -> list[OpenFinding]:
        rows = self._rows(f"SELECT {_COLUMNS} FROM {self.table} "
                          "WHERE recorded_to_position IS NULL")
        return [OpenFinding(self._finding(r), int(r["recorded_from_position"])) for r in rows]

    def open_pieces(self) -> list[OpenPiece]:
        rows = self._rows(f"SELECT {_PIECE_COLUMNS} FROM {self.pieces_table} "
                          "WHERE recorded_to_position IS NULL")
        return [OpenPiece(self._piece(r), int(r["recorded_from_position"])) for r in rows]

    def write(self, name: str, seen: int, reached: int, commits: Iterable[Commit]) -> None:
        """Close and open rows for every commit of a batch, and move tracking from `seen` to
        `reached`, in one transaction. Set-based: one statement for all the rows of a kind,
        whatever the number of commits (all inserts before the closing updates, so a row
        opened and closed within the batch is found)."""
        commits = list(commits)
        d = self.dialect
        with d.transaction(commit=True) as cursor:
            d.insert_many(cursor, self.table, _FINDING_TYPES,
                          [self._open_params(c, f) for c in commits for f in c.opened])
            d.insert_many(cursor, self.pieces_table, _PIECE_TYPES,
                          [self._piece_params(c, p) for c in commits for p in c.opened_pieces])
            d.update_many(cursor, self.table, _CLOSE, _FINDING_KEY,
                          [self._close_params(c, row) for c in commits for row in c.closed])
            d.update_many(cursor, self.pieces_table, _CLOSE, _PIECE_KEY,
                          [self._close_piece_params(c, o) for c in commits
                           for o in c.closed_pieces])
            for commit in commits:
                self._write_outbox(cursor, commit)
                self._write_alarms(cursor, commit)
            self._move_tracking(cursor, name, seen, reached)

    def _write_alarms(self, cursor: Cursor, commit: Commit) -> None:
        """A failed subject raises its alarm, a recovered one clears it, in the transaction
        of the rows that leave the first as it was and bring the second up to date."""
        for failure in commit.failed:
            self.alarms.raise_alarm(PROJECTION_ALARMS, failure.key, failure.reason,
                                    commit.position, cursor=cursor)
        for subject in commit.recovered:
            self.alarms.clear(PROJECTION_ALARMS, subject_key(subject),
                              cursor=cursor)

    def failing_subjects(self) -> list[SubjectRef]:
        """The subjects whose alarm says their last evaluation raised."""
        found = (subject_of_key(a.key) for a in self.alarms.active(PROJECTION_ALARMS))
        return sorted(s for s in found if s is not None)

    def _write_outbox(self, cursor: Any, commit: Commit) -> None:
        """The commit's announcements, in the transaction of the findings they announce."""
        if not commit.messages:
            return
        d = self.dialect
        cursor.executemany(d.sql(
            f"INSERT INTO {d.outbox_table} (message_id, position, seq, event_type, "
            "ordering_key, payload, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING"  # a rebuild does not announce again
        ), [(m.message_id, m.position, m.seq, m.event_type, m.ordering_key,
             json.dumps(m.payload, sort_keys=True), d.to_db_time(commit.recorded_at))
            for m in commit.messages])

    def _piece_params(self, commit: Commit, p: ProcessingPiece) -> tuple[Any, ...]:
        d = self.dialect
        return (p.firm_id, p.activity_id, p.data_subject_country, d.to_db_date(p.valid_from),
                d.to_db_date(p.valid_to), p.processed_in, commit.position, None,
                d.to_db_time(commit.recorded_at), None)

    def _close_piece_params(self, commit: Commit, o: OpenPiece) -> tuple[Any, ...]:
        d = self.dialect
        return (commit.position, d.to_db_time(commit.recorded_at), o.piece.activity_id,
                o.piece.data_subject_country, d.to_db_date(o.piece.valid_from),
                o.recorded_from_position)

    def _move_tracking(self, cursor: Any, name: str, seen: int, reached: int) -> None:
        table = self.dialect.tracking_table
        cursor.execute(self.dialect.sql(
            f"UPDATE {table} SET position = %s WHERE name = %s AND position = %s"),
            (reached, name, seen))
        if cursor.rowcount == 1:
            return
        cursor.execute(self.dialect.sql(f"SELECT position FROM {table} WHERE name = %s"),
                       (name,))
        if seen == 0 and cursor.fetchone() is None:
            cursor.execute(self.dialect.sql(
                f"INSERT INTO {table} (name, position) VALUES (%s, %s)"), (name, reached))
            return
        raise TrackingConflictError(f"projection {name} moved on from {seen}")

    def clear(self, name: str) -> None:
        """Empty the read model, and forget its failed subjects: a rebuild finds them again."""
        failing = self.failing_subjects()
        with self.dialect.transaction(commit=True) as cursor:
            for subject in failing:
                self.alarms.clear(PROJECTION_ALARMS, subject_key(subject),
                                  cursor=cursor)
            cursor.execute(f"DELETE FROM {self.table}")
            cursor.execute(f"DELETE FROM {self.pieces_table}")
            cursor.execute(self.dialect.sql(
                f"DELETE FROM {self.dialect.tracking_table} WHERE name = %s"), (name,))

    def findings(self, *, position: int, firm_id: str | None = None,
                 day: date | None = None) -> list[Finding]:
        """Findings as known at `position`, for one firm or all, holding on `day` or ever."""
        where, params = self._known(position, firm_id, day)
        rows = self._rows(f"SELECT {_COLUMNS} FROM {self.table} WHERE {where}", params)
        return sorted(self._finding(r) for r in rows)

    def findings_page(self, *, position: int, firm_id: str, day: date, limit: int,
                      after: tuple[str, str, str] | None) -> list[Finding]:
        """The firm's findings holding on `day`, in key order after `after`, at most `limit`:
        the database pages, so a firm with thousands of findings reads one page of them."""
        where, params = self._known(position, firm_id, day)
        key = ", ".join(f"{c}{self.dialect.byte_order}"
                        for c in ("subject_type", "subject_id", "regulation_id"))
        if after is not None:
            where += f" AND ({key}) > (%s, %s, %s)"
            params += after
        rows = self._rows(f"SELECT {_COLUMNS} FROM {self.table} WHERE {where} "
                          f"ORDER BY {key}, valid_from LIMIT %s", (*params, limit))
        return [self._finding(r) for r in rows]

    def status_counts(self, *, position: int, firm_id: str, day: date) -> dict[str, int]:
        """How many of the firm's findings holding on `day` have each status."""
        where, params = self._known(position, firm_id, day)
        rows = self._rows(f"SELECT status, count(*) AS n FROM {self.table} WHERE {where} "
                          "GROUP BY status", params)
        return {r["status"]: int(r["n"]) for r in rows}

    def firm_statuses(self, *, position: int, day: date) -> list[tuple[str, str]]:
        """(firm, status) of every status some finding holding on `day` has: a few rows a
        firm, however many findings it has."""
        where, params = self._known(position, None, day)
        rows = self._rows(f"SELECT DISTINCT firm_id, status FROM {self.table} WHERE {where}",
                          params)
        return [(r["firm_id"], r["status"]) for r in rows]

    def findings_of(self, *, position: int, firm_ids: list[str], day: date) -> list[Finding]:
        """The findings holding on `day` of these firms only (one page of a firm list)."""
        if not firm_ids:
            return []
        where, params = self._known(position, None, day)
        marks = ", ".join(["%s"] * len(firm_ids))
        rows = self._rows(f"SELECT {_COLUMNS} FROM {self.table} WHERE {where} "
                          f"AND firm_id IN ({marks})", (*params, *firm_ids))
        return sorted(self._finding(r) for r in rows)

    def _known(self, position: int, firm_id: str | None, day: date | None
               ) -> tuple[str, tuple[Any, ...]]:
        """The WHERE of rows known at `position` (of one firm, holding on `day`)."""
        where = ("recorded_from_position <= %s "
                 "AND (recorded_to_position IS NULL OR recorded_to_position > %s)")
        params: list[Any] = [position, position]
        if firm_id is not None:
            where += " AND firm_id = %s"
            params.append(firm_id)
        if day is not None:
            where += " AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"
            params += [self.dialect.to_db_date(day)] * 2
        return where, tuple(params)

    def pieces(self, *, position: int, firm_id: str, day: date) -> list[ProcessingPiece]:
        rows = self._rows(
            f"SELECT {_PIECE_COLUMNS} FROM {self.pieces_table} WHERE firm_id = %s "
            "AND recorded_from_position <= %s AND (recorded_to_position IS NULL OR "
            "recorded_to_position > %s) AND valid_from <= %s AND (valid_to IS NULL OR "
            "valid_to > %s)",
            (firm_id, position, position, self.dialect.to_db_date(day),
             self.dialect.to_db_date(day)),
        )
        return sorted(self._piece(r) for r in rows)

    def _piece(self, row: Any) -> ProcessingPiece:
        return ProcessingPiece(
            firm_id=row["firm_id"],
            activity_id=row["activity_id"],
            data_subject_country=row["data_subject_country"],
            valid_from=self.dialect.from_db_date(row["valid_from"]),  # type: ignore[arg-type]
            valid_to=self.dialect.from_db_date(row["valid_to"]),
            processed_in=row["processed_in"],
        )

    def changes_between(self, firm_id: str, after: int, upto: int) -> list[int]:
        """Positions in (after, upto] at which the firm's findings changed."""
        rows = self._rows(
            f"SELECT DISTINCT recorded_from_position AS p FROM {self.table} WHERE firm_id = %s "
            "AND recorded_from_position > %s AND recorded_from_position <= %s UNION "
            f"SELECT DISTINCT recorded_to_position AS p FROM {self.table} WHERE firm_id = %s "
            "AND recorded_to_position > %s AND recorded_to_position <= %s",
            (firm_id, after, upto, firm_id, after, upto),
        )
        return sorted(int(r["p"]) for r in rows)

    def _finding(self, row: Any) -> Finding:
        return Finding(
            firm_id=row["firm_id"],
            subject_type=row["subject_type"],
            subject_id=row["subject_id"],
            regulation_id=row["regulation_id"],
            valid_from=self.dialect.from_db_date(row["valid_from"]),  # type: ignore[arg-type]
            valid_to=self.dialect.from_db_date(row["valid_to"]),
            status=Status(row["status"]),
            citation=row["citation"],
            explanation=row["explanation"],
            evidence=tuple(json.loads(row["evidence"])),
        )

    def _open_params(self, commit: Commit, f: Finding) -> tuple[Any, ...]:
        d = self.dialect
        return (f.firm_id, f.subject_type, f.subject_id, f.regulation_id,
                d.to_db_date(f.valid_from), d.to_db_date(f.valid_to), f.status.value,
                commit.position, None, d.to_db_time(commit.recorded_at), None, f.citation,
                f.explanation, json.dumps(list(f.evidence)))

    def _close_params(self, commit: Commit, row: OpenFinding) -> tuple[Any, ...]:
        d, f = self.dialect, row.finding
        return (commit.position, d.to_db_time(commit.recorded_at), f.subject_type, f.subject_id,
                f.regulation_id, d.to_db_date(f.valid_from), row.recorded_from_position)
