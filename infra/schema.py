"""Every table chipledger creates beside the library's events table, declared once.

A table is data: its columns (with neutral types), keys, indexes, and whether it refuses
edits. Each backend's dialect renders it to its own DDL (`infra.postgres.ddl`,
`infra.sqlite.ddl`), so adding a column touches this file only. The events table is the
eventsourcing library's: it creates it, and we only add the append-only triggers to it.
"""

from dataclasses import dataclass
from typing import Literal, Protocol

# The neutral column types; each backend maps them to its own (see its dialect's TYPES).
ColumnType = Literal["text", "integer", "bigint", "date", "timestamp", "uuid", "json", "bytes"]
Backend = Literal["postgres", "sqlite"]


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    null: bool = False
    unique: bool = False
    check: str | None = None  # an SQL condition both backends accept


@dataclass(frozen=True)
class Index:
    suffix: str  # the index is named <table>_<suffix>
    columns: tuple[str, ...]
    where: str | None = None
    only: Backend | None = None  # an index one backend's planner needs and the other's not


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # the primary key
    unique: tuple[tuple[str, ...], ...] = ()
    indexes: tuple[Index, ...] = ()
    # Indexes an earlier chipledger created and a later one replaced, dropped at start.
    retired: tuple[Index, ...] = ()
    append_only: bool = False  # UPDATE and DELETE (and TRUNCATE) refused by trigger

    @property
    def short(self) -> str:
        return self.name.removeprefix("chipledger_")

    def index_name(self, index: Index) -> str:
        return f"{self.name}_{index.suffix}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def typed(self, *names: str) -> tuple[Column, ...]:
        """These columns (all when none are named), in the order given."""
        return tuple(self.column(n) for n in names) if names else self.columns


def _c(name: str, type_: ColumnType, *, null: bool = False, unique: bool = False,
       check: str | None = None) -> Column:
    return Column(name, type_, null, unique, check)


def _null(name: str, type_: ColumnType) -> Column:
    return Column(name, type_, null=True)


# Columns shared by the two bitemporal read models: when a row was known, by position and time.
_RECORDED = (_c("recorded_from_position", "bigint"), _null("recorded_to_position", "bigint"),
             _c("recorded_from", "timestamp"), _null("recorded_to", "timestamp"))

SEALS = Table(
    "chipledger_seals",
    (_c("position", "bigint"), _c("notification_id", "bigint", unique=True),
     _c("originator_id", "uuid"), _c("originator_version", "bigint"),
     _c("recorded_at", "timestamp"), _c("prev_hash", "text"), _c("hash", "text"),
     _c("recorded_by", "text")),
    key=("position",),
    unique=(("originator_id", "originator_version"),),
    indexes=(
        # position_at reads one end of this index and entries_recorded_at one run of it in
        # position order, neither walking back from the head nor sorting a commit.
        Index("recorded_at_position", ("recorded_at", "position"), only="postgres"),
        # Enough for SQLite: position is the rowid, which ends every SQLite index.
        Index("recorded_at", ("recorded_at",), only="sqlite"),
    ),
    retired=(Index("recorded_at", ("recorded_at",), only="postgres"),),
    append_only=True,
)
IDEMPOTENCY = Table(
    "chipledger_idempotency",
    (_c("scope", "text"), _c("key", "text"), _c("request_hash", "text"),
     _c("status", "integer"), _c("answer", "json"), _c("created_at", "timestamp")),
    key=("scope", "key"),
)
API_KEYS = Table(
    "chipledger_api_keys",
    (_c("key_id", "text"), _c("name", "text"), _c("role", "text"),
     _c("key_hash", "text", unique=True), _c("created_at", "timestamp"),
     _null("revoked_at", "timestamp")),
    key=("key_id",),
)
FINDINGS = Table(
    "chipledger_findings",
    (_c("firm_id", "text"), _c("subject_type", "text"), _c("subject_id", "text"),
     _c("regulation_id", "text"), _c("valid_from", "date"), _null("valid_to", "date"),
     _c("status", "text"), *_RECORDED, _c("citation", "text"), _c("explanation", "text"),
     _c("evidence", "text")),
    key=("subject_type", "subject_id", "regulation_id", "valid_from", "recorded_from_position"),
    indexes=(Index("firm", ("firm_id", "recorded_from_position", "valid_from")),
             Index("open", ("firm_id", "valid_from"), where="recorded_to_position IS NULL")),
)
RESIDENCY = Table(
    "chipledger_residency",
    (_c("firm_id", "text"), _c("activity_id", "text"), _c("data_subject_country", "text"),
     _c("valid_from", "date"), _null("valid_to", "date"), _null("processed_in", "text"),
     *_RECORDED),
    key=("activity_id", "data_subject_country", "valid_from", "recorded_from_position"),
    indexes=(Index("firm", ("firm_id", "recorded_from_position", "valid_from")),),
)
TRACKING = Table(
    "chipledger_tracking", (_c("name", "text"), _c("position", "bigint")), key=("name",))
CHECKPOINTS = Table(
    "chipledger_checkpoints",
    (_c("position", "bigint"), _c("hash", "text"), _c("signed_at", "timestamp"),
     _c("body", "text")),
    key=("position",),
    append_only=True,
)
OUTBOX = Table(
    "chipledger_outbox",
    (_c("message_id", "text"), _c("position", "bigint"), _c("seq", "bigint", unique=True),
     _c("event_type", "text"), _c("ordering_key", "text"), _c("payload", "text"),
     _c("created_at", "timestamp")),
    key=("message_id",),
    indexes=(Index("position", ("position",)),),
)
ENDPOINTS = Table(
    "chipledger_webhook_endpoints",
    (_c("endpoint_id", "text"), _c("url", "text"), _c("event_types", "text"),
     _null("description", "text"), _c("enabled", "bigint"), _c("created_at", "timestamp"),
     _null("disabled_at", "timestamp"), _null("disabled_reason", "text"),
     _c("from_position", "bigint"),
     # The circuit breaker (infra.webhooks.breaker): closed, open or half_open (a probe is
     # out until open_until), the current run of failures, and how often it opened.
     _c("circuit_state", "text"), _c("consecutive_failures", "bigint"),
     _null("open_until", "timestamp"), _c("circuit_openings", "bigint"),
     _null("max_per_second", "bigint")),  # unlimited when null
    key=("endpoint_id",),
)
SECRETS = Table(
    "chipledger_webhook_secrets",
    (_c("endpoint_id", "text"), _c("secret", "text"), _c("fingerprint", "text"),
     _c("created_at", "timestamp"), _null("expires_at", "timestamp")),
    key=("endpoint_id", "fingerprint"),
)
DELIVERIES = Table(
    "chipledger_webhook_deliveries",
    (_c("endpoint_id", "text"), _c("message_id", "text"), _c("seq", "bigint"),
     _c("ordering_key", "text"), _c("status", "text"), _c("attempts", "bigint"),
     _null("next_attempt_at", "timestamp"), _null("claimed_until", "timestamp"),
     _null("claimed_by", "text"), _null("last_status_code", "bigint"),
     _null("last_error", "text"), _c("created_at", "timestamp"),
     _c("updated_at", "timestamp")),
    key=("endpoint_id", "message_id"),
    indexes=(Index("due", ("status", "next_attempt_at")),
             Index("order", ("endpoint_id", "ordering_key", "seq"))),
)
ATTEMPTS = Table(
    "chipledger_webhook_attempts",
    (_c("endpoint_id", "text"), _c("message_id", "text"), _c("attempt", "bigint"),
     _c("at", "timestamp"), _null("status_code", "bigint"), _c("latency_ms", "bigint"),
     _null("error", "text")),
    key=("endpoint_id", "message_id", "attempt"),
)
ALARMS = Table(
    "chipledger_alarms",
    (_c("component", "text"), _c("key", "text"), _c("reason", "text"),
     _null("position", "bigint"), _c("raised_at", "timestamp")),
    key=("component", "key"),
)
SIGNING_KEY = Table(
    "chipledger_signing_key",
    (_c("singleton", "integer", check="singleton = 1"), _c("key_id", "text"),
     _c("public_key", "text"), _c("registered_at", "timestamp")),
    key=("singleton",),
    append_only=True,
)
# The workbench's sign-in sessions (infra.ui_sessions): digests only, never a token or a key.
UI_SESSIONS = Table(
    "chipledger_ui_sessions",
    (_c("token_hash", "text"), _c("key_hash", "text"), _c("key_id", "text"), _c("name", "text"),
     _c("role", "text"), _c("csrf_token", "text"), _c("last_seen", "timestamp")),
    key=("token_hash",),
)
# The Merkle tree over the log (infra.merkle.tree_store): full C2SP tiles, the edge past them
# (one row, rewritten by each batch), the signed checkpoint notes and witnesses' cosignatures.
MERKLE_TILES = Table(
    "chipledger_merkle_tiles",
    (_c("level", "integer"), _c("idx", "bigint"), _c("hashes", "bytes")),
    key=("level", "idx"),
    append_only=True,
)
MERKLE_STATE = Table(
    "chipledger_merkle_state",
    (_c("singleton", "integer", check="singleton = 1"), _c("size", "bigint"),
     _c("chain_hash", "text"), _c("edge", "bytes")),
    key=("singleton",),
)
MERKLE_CHECKPOINTS = Table(
    "chipledger_merkle_checkpoints",
    (_c("size", "bigint"), _c("root", "bytes"), _c("note", "text"), _c("signed_at", "text")),
    key=("size",),
    append_only=True,
)
MERKLE_COSIGNATURES = Table(
    "chipledger_merkle_cosignatures",
    (_c("size", "bigint"), _c("name", "text"), _c("key_id", "text"), _c("line", "text"),
     _c("added_at", "text")),
    key=("size", "name", "key_id"),
    append_only=True,
)

# In creation order. A new table goes here, and its name into TableNames below.
TABLES: tuple[Table, ...] = (SEALS, IDEMPOTENCY, API_KEYS, FINDINGS, RESIDENCY, TRACKING,
                             CHECKPOINTS, OUTBOX, ENDPOINTS, SECRETS, DELIVERIES, ATTEMPTS,
                             ALARMS, SIGNING_KEY, UI_SESSIONS, MERKLE_TILES, MERKLE_STATE,
                             MERKLE_CHECKPOINTS, MERKLE_COSIGNATURES)


class TableNames(Protocol):
    """Each table's name as one backend's SQL writes it (qualified by a schema on
    PostgreSQL), under the attribute the stores use: `dialect.seals_table`."""

    seals_table: str = SEALS.name
    idempotency_table: str = IDEMPOTENCY.name
    api_keys_table: str = API_KEYS.name
    findings_table: str = FINDINGS.name
    residency_table: str = RESIDENCY.name
    tracking_table: str = TRACKING.name
    checkpoints_table: str = CHECKPOINTS.name
    outbox_table: str = OUTBOX.name
    endpoints_table: str = ENDPOINTS.name
    secrets_table: str = SECRETS.name
    deliveries_table: str = DELIVERIES.name
    attempts_table: str = ATTEMPTS.name
    alarms_table: str = ALARMS.name
    signing_key_table: str = SIGNING_KEY.name
    ui_sessions_table: str = UI_SESSIONS.name
    merkle_tiles_table: str = MERKLE_TILES.name
    merkle_state_table: str = MERKLE_STATE.name
    merkle_checkpoints_table: str = MERKLE_CHECKPOINTS.name
    merkle_cosignatures_table: str = MERKLE_COSIGNATURES.name

    def name_tables(self, qualify: "Qualify") -> None:
        for attribute in TableNames.__annotations__:
            setattr(self, attribute, qualify(getattr(TableNames, attribute)))


class Qualify:
    """A table's name as written in a backend's SQL."""

    def __init__(self, schema: str | None = None) -> None:
        self.schema = schema

    def __call__(self, name: str) -> str:
        return f'"{self.schema}".{name}' if self.schema else name


@dataclass(frozen=True)
class Rendering:
    """How one backend writes DDL: its type names and how it qualifies a name."""

    backend: Backend
    types: dict[ColumnType, str]
    qualify: Qualify

    def column(self, table: Table, column: Column) -> str:
        parts = [column.name, self.types[column.type]]
        if table.key == (column.name,):
            parts.append("PRIMARY KEY")  # inline: on SQLite an INTEGER one is the rowid
        elif not column.null:
            parts.append("NOT NULL")
        if column.unique:
            parts.append("UNIQUE")
        if column.check:
            parts.append(f"CHECK ({column.check})")
        return " ".join(parts)

    def create_table(self, table: Table) -> str:
        parts = [self.column(table, c) for c in table.columns]
        if len(table.key) > 1:
            parts.append(f"PRIMARY KEY ({', '.join(table.key)})")
        parts += [f"UNIQUE ({', '.join(u)})" for u in table.unique]
        return (f"CREATE TABLE IF NOT EXISTS {self.qualify(table.name)} "
                f"({', '.join(parts)})")

    def create_index(self, table: Table, index: Index) -> str:
        where = f" WHERE {index.where}" if index.where else ""
        return (f"CREATE INDEX IF NOT EXISTS {table.index_name(index)} ON "
                f"{self.qualify(table.name)} ({', '.join(index.columns)}){where}")

    def drop_index(self, table: Table, index: Index) -> str:
        return f"DROP INDEX IF EXISTS {self.qualify(table.index_name(index))}"

    def mine(self, indexes: tuple[Index, ...]) -> list[Index]:
        return [i for i in indexes if i.only in (None, self.backend)]

    def tables(self) -> list[str]:
        """Each table with its indexes (and its retired ones dropped), in TABLES' order."""
        statements = []
        for table in TABLES:
            statements.append(self.create_table(table))
            statements += [self.create_index(table, i) for i in self.mine(table.indexes)]
            statements += [self.drop_index(table, i) for i in self.mine(table.retired)]
        return statements


    def append_only(self, events_table: str) -> list[tuple[str, str]]:
        """(short name, name in SQL) of every table that refuses edits, the library's (its
        name already as written) first."""
        return [("events", events_table),
                *((t.short, self.qualify(t.name)) for t in TABLES if t.append_only)]
