"""PostgreSQL: its recorder, its dialect and its page readers (and what else only it needs)."""

from infra.postgres.dialect import TYPES as TYPES
from infra.postgres.dialect import PostgresDialect as PostgresDialect
from infra.postgres.recorder import SealingPostgresRecorder as SealingPostgresRecorder
