"""Projection rebuild against the plain library's per-event projection, in one run.

The baseline is the eventsourcing 9.5 projection pattern (eventsourcing-notes.md, section 3):
read notifications, decode each with the mapper, and process it in its own transaction that
records the tracking row and updates a one-row-per-record view. It runs for a fixed number of
events (it is slow) on its own tracking and view tables, so the ledger is left as it was.
Ours rebuilds the findings read model from position 0 with `ProjectionRunner.rebuild`.
"""

import json
import time
from typing import Any

from eventsourcing.persistence import Tracking
from eventsourcing.postgres import PostgresDatastore, PostgresTrackingRecorder
from eventsourcing.sqlite import SQLiteDatastore, SQLiteTrackingRecorder
from psycopg.sql import SQL, Identifier

from infra.settings import Settings

VIEW = "bench_library_view"


class _PostgresView(PostgresTrackingRecorder):
    def __init__(self, datastore: PostgresDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        table = (Identifier(datastore.schema), Identifier(VIEW))
        self.sql_create_statements.append(SQL(
            "CREATE TABLE IF NOT EXISTS {0}.{1} (originator_id uuid PRIMARY KEY, "
            "version bigint NOT NULL, topic text NOT NULL)").format(*table))
        self.upsert = SQL(
            "INSERT INTO {0}.{1} VALUES (%s, %s, %s) ON CONFLICT (originator_id) "
            "DO UPDATE SET version = EXCLUDED.version, topic = EXCLUDED.topic").format(*table)

    def apply(self, originator_id: Any, version: int, topic: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as cursor:  # one transaction per event
            self._insert_tracking(cursor, tracking)
            cursor.execute(self.upsert, (originator_id, version, topic), prepare=True)


class _SQLiteView(SQLiteTrackingRecorder):
    def __init__(self, datastore: SQLiteDatastore, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        self.create_table_statements.append(
            f"CREATE TABLE IF NOT EXISTS {VIEW} (originator_id text PRIMARY KEY, "
            "version integer NOT NULL, topic text NOT NULL)")

    def apply(self, originator_id: Any, version: int, topic: str, tracking: Tracking) -> None:
        with self.datastore.transaction(commit=True) as cursor:
            self._insert_tracking(cursor, tracking)
            cursor.execute(f"INSERT INTO {VIEW} VALUES (?, ?, ?) ON CONFLICT (originator_id) "
                           "DO UPDATE SET version = excluded.version, topic = excluded.topic",
                           (str(originator_id), version, topic))


def child_library_projection(url: str, events: int) -> None:
    """Baseline: the library's per-event projection over the first `events` events."""
    from domain.application import Ledger
    from infra.bootstrap import library_env

    env = library_env(Settings(database_url=url))
    env.pop("APPLICATION_RECORDER_TOPIC")
    app = Ledger(env=env)
    name = f"bench_library_{int(time.time())}"  # fresh tracking each run
    factory = app.factory
    view: Any
    if isinstance(factory.datastore, PostgresDatastore):  # type: ignore[attr-defined]
        view = factory.tracking_recorder(_PostgresView)  # type: ignore[arg-type]
    else:
        view = _SQLiteView(factory.datastore)  # type: ignore[attr-defined]
        view.create_table()
    started, done, start = time.perf_counter(), 0, 1
    while done < events:
        page = app.recorder.select_notifications(start, limit=min(500, events - done))
        if not page:
            break
        for notification in page:
            event = app.mapper.to_domain_event(notification)
            view.apply(event.originator_id, event.originator_version, notification.topic,
                       Tracking(name, notification.id))
        done += len(page)
        start = page[-1].id + 1
    app.close()
    print(json.dumps({"events": done, "seconds": time.perf_counter() - started}))


def child_rebuild(url: str) -> None:
    """Ours: drop the findings read model and rebuild it from the whole log."""
    from infra.bootstrap import bootstrap
    from infra.runner import ProjectionRunner

    container = bootstrap(Settings(database_url=url))
    started = time.perf_counter()
    position = ProjectionRunner(container).rebuild()
    seconds = time.perf_counter() - started
    container.close()
    print(json.dumps({"events": position, "seconds": seconds}))

