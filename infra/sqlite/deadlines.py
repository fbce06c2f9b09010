"""SQLite's side of infra.deadlines: the busy timeout and the pool's checkout timeout are the
database timeout (in-process, no network)."""

from typing import Any

from eventsourcing.sqlite import SQLiteFactory
from eventsourcing.utils import Environment, EnvType

from infra.deadlines import env_timeout


class DeadlineSQLiteFactory(SQLiteFactory):
    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        timeout = env_timeout(self.env)
        pool: Any = self.datastore.pool  # no connection is made before the first checkout
        pool.lock_timeout = timeout  # sqlite3's busy timeout: waiting on another writer
        pool.pool_timeout = timeout  # waiting for this process's writer or a free connection
