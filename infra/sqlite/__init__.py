"""SQLite: its recorder, its dialect and its page readers (and what else only it needs)."""

from infra.sqlite.dialect import TYPES as TYPES
from infra.sqlite.dialect import SQLiteDialect as SQLiteDialect
from infra.sqlite.recorder import SealingSQLiteRecorder as SealingSQLiteRecorder
