"""Alarms: conditions that leave the service serving but not to be trusted blindly.

A failed subject in the projection, a head that does not extend the last signed checkpoint:
each is raised by the component that finds it and kept in the database, so that `/readyz`
and `/metrics` of every process on the database (API replicas, workers) report it, not only
the process that found it. An alarm is keyed by (component, key); raising it again updates
it, clearing it removes it.
"""

from dataclasses import dataclass
from datetime import datetime

from infra.dialect import Cursor, Dialect


@dataclass(frozen=True)
class Alarm:
    component: str
    key: str
    reason: str
    position: int | None
    raised_at: datetime

    def to_json(self) -> dict[str, object]:
        return {"component": self.component, "key": self.key, "reason": self.reason,
                "position": self.position, "raised_at": self.raised_at.isoformat()}


class Alarms:
    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.table = dialect.alarms_table

    def raise_alarm(self, component: str, key: str, reason: str, position: int | None = None,
                    *, cursor: Cursor | None = None) -> None:
        """Raise (or update) an alarm; with `cursor`, in that transaction."""
        statement = self.dialect.sql(
            f"INSERT INTO {self.table} (component, key, reason, position, raised_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (component, key) DO UPDATE SET "
            "reason = excluded.reason, position = excluded.position, "
            "raised_at = excluded.raised_at")
        if cursor is not None:
            self._insert(cursor, statement, component, key, reason, position)
            return
        with self.dialect.transaction(commit=True) as own:
            self._insert(own, statement, component, key, reason, position)

    def _insert(self, cursor: Cursor, statement: str, component: str, key: str, reason: str,
                position: int | None) -> None:
        now = self.dialect.to_db_time(self.dialect.db_now(cursor))
        cursor.execute(statement, (component, key, reason, position, now))

    def clear(self, component: str, key: str | None = None, *,
              cursor: Cursor | None = None) -> None:
        """Clear one alarm of `component`, or all of them when `key` is None."""
        where, params = ("component = %s", (component,)) if key is None else \
            ("component = %s AND key = %s", (component, key))
        statement = self.dialect.sql(f"DELETE FROM {self.table} WHERE {where}")
        if cursor is not None:
            cursor.execute(statement, params)
            return
        with self.dialect.transaction(commit=True) as own:
            own.execute(statement, params)

    def active(self, component: str | None = None) -> list[Alarm]:
        where, params = ("", ()) if component is None else (" WHERE component = %s",
                                                              (component,))
        with self.dialect.transaction(commit=False) as cursor:
            cursor.execute(self.dialect.sql(
                f"SELECT component, key, reason, position, raised_at FROM {self.table}{where} "
                "ORDER BY component, key"), params)
            rows = cursor.fetchall()
        return [Alarm(row["component"], row["key"], row["reason"], row["position"],
                      self.dialect.from_db_time(row["raised_at"])) for row in rows]
