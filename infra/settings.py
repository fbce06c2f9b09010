"""Settings from the environment (`CHIPLEDGER_*`), read once by the composition root."""

import difflib
from collections.abc import Mapping
from enum import StrEnum
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthMode(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


class DocsMode(StrEnum):
    """Whether /openapi.json, /docs and /redoc are served. They answer without a key: they
    describe the contract, no ledger data, and a browser opening /docs sends no bearer key."""

    PUBLIC = "public"
    OFF = "off"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHIPLEDGER_", env_ignore_empty=True,
                                      extra="ignore")

    database_url: str = "sqlite:///./chipledger.db"
    # PostgreSQL hot standbys of database_url, comma-separated: reads go to one whose replayed
    # position covers the request, else to the primary (infra.replicas; docs/scaling.md).
    read_database_urls: str = ""
    # Seconds the database has to answer each call of a request path (see infra.deadlines).
    database_timeout: float = Field(default=5.0, gt=0, le=300)
    auth: AuthMode = AuthMode.ENABLED
    docs: DocsMode = DocsMode.PUBLIC
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    # Seconds an Idempotency-Key's answer is kept: a retry after that is a new request.
    idempotency_ttl: float = Field(default=24 * 3600, gt=0)
    postgres_pool_size: int = Field(default=5, ge=1)
    postgres_max_overflow: int = Field(default=20, ge=0)
    postgres_lock_timeout: int = Field(default=5, ge=0)
    webhook_allow_local: bool = False
    webhook_timeout: float = Field(default=15.0, gt=0, le=60)
    webhook_backoff_scale: float = Field(default=1.0, gt=0, le=10)  # tests shrink the schedule
    # Deliveries one dispatcher has in flight at once, in all and to any one endpoint.
    webhook_max_in_flight: int = Field(default=256, ge=1, le=10_000)
    webhook_max_in_flight_per_endpoint: int = Field(default=16, ge=1, le=1000)
    # The circuit breaker: a run of this many failures opens it for the cool-down (seconds).
    webhook_breaker_failures: int = Field(default=5, ge=1, le=1000)
    webhook_breaker_cooldown: float = Field(default=30.0, gt=0, le=86400)
    poll_interval: float = Field(default=0.5, gt=0, le=60)
    signing_key_file: str | None = None
    checkpoint_every_events: int = Field(default=1000, ge=1)
    checkpoint_every_seconds: float = Field(default=300, gt=0)
    # The Merkle tree's C2SP checkpoints (docs/merkle.md): the log's name, first line of each
    # note and its key's name; the witnesses' note verifier keys (comma-separated), and how
    # many of them must cosign a checkpoint for it to count as published.
    log_origin: str = "localhost/chipledger"
    witness_keys: str = ""
    witness_quorum: int = Field(default=0, ge=0)
    ui_session_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)  # workbench sign-in

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("use sqlite:///path/to/file.db or postgresql://user:pass@host/db")
        return url

    @field_validator("read_database_urls")
    @classmethod
    def _replica_schemes(cls, urls: str) -> str:
        for url in _split_urls(urls):
            if not url.startswith(("postgresql://", "postgres://")):
                raise ValueError(f"{url!r}: a read replica is a PostgreSQL hot standby, "
                                 "postgresql://user:pass@host/db")
        return urls

    @model_validator(mode="after")
    def _replicas_need_postgres(self) -> "Settings":
        if self.read_urls and self.backend != "postgres":
            raise ValueError("CHIPLEDGER_READ_DATABASE_URLS needs a PostgreSQL "
                             "CHIPLEDGER_DATABASE_URL (its standbys); SQLite has no replicas")
        return self

    @property
    def read_urls(self) -> list[str]:
        """Each replica's URL; one without `schema=` reads the primary's schema."""
        schema = _query(self.database_url).get("schema")
        return [url if schema is None or "schema" in _query(url)
                else f"{url}{'&' if '?' in url else '?'}schema={schema}"
                for url in _split_urls(self.read_database_urls)]

    @field_validator("log_origin")
    @classmethod
    def _origin_is_a_key_name(cls, origin: str) -> str:
        if not origin or "+" in origin or any(c.isspace() or not c.isprintable()
                                              for c in origin):
            raise ValueError("a log origin is one word without '+', e.g. "
                             "ledger.example.com/chipledger")
        return origin

    @model_validator(mode="after")
    def _quorum_of_known_witnesses(self) -> "Settings":
        if self.witness_quorum > len(self.witness_key_list()):
            raise ValueError(f"CHIPLEDGER_WITNESS_QUORUM {self.witness_quorum} is more than the "
                             f"{len(self.witness_key_list())} CHIPLEDGER_WITNESS_KEYS")
        return self

    @field_validator("witness_keys")
    @classmethod
    def _witness_keys_are_cosignature_keys(cls, keys: str) -> str:
        from infra.merkle.cosignature import CosignatureVerifier  # the format's one reader

        for key in (k.strip() for k in keys.split(",") if k.strip()):
            CosignatureVerifier.from_vkey(key)  # a NoteError is a ValueError: refused here
        return keys

    def witness_key_list(self) -> list[str]:
        return [key.strip() for key in self.witness_keys.split(",") if key.strip()]

    @property
    def backend(self) -> Literal["sqlite", "postgres"]:
        return "sqlite" if self.database_url.startswith("sqlite:") else "postgres"


def _split_urls(urls: str) -> list[str]:
    return [url.strip() for url in urls.split(",") if url.strip()]


def _query(url: str) -> dict[str, str]:
    query = url.split("?", 1)[1] if "?" in url else ""
    return dict(p.split("=", 1) for p in query.split("&") if "=" in p)


ENV_PREFIX = "CHIPLEDGER_"
# Names of the test suite and CI, not the service's: it ignores them (see README).
TOOLING_PREFIXES = ("CHIPLEDGER_TEST_", "CHIPLEDGER_CI_")
TOOLING_NAMES = frozenset({"CHIPLEDGER_REQUIRE_POSTGRES"})


def known_variables() -> list[str]:
    return sorted(ENV_PREFIX + name.upper() for name in Settings.model_fields)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """CHIPLEDGER_* names in `environ` that are neither a setting nor the tooling's: typos,
    which would otherwise leave a setting at its default without a word."""
    known = set(known_variables())
    return sorted(name for name in environ if name.upper().startswith(ENV_PREFIX)
                  and name.upper() not in known and name.upper() not in TOOLING_NAMES
                  and not name.upper().startswith(TOOLING_PREFIXES))


def unknown_variables_message(names: list[str]) -> str:
    known = known_variables()
    guesses = []
    for name in names:
        close = difflib.get_close_matches(name.upper(), known, n=1)
        guesses.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return (f"unknown environment variable{'s' if len(names) > 1 else ''} "
            f"{', '.join(guesses)}; known: {', '.join(known)} (and CHIPLEDGER_TEST_*, "
            "CHIPLEDGER_CI_*, CHIPLEDGER_REQUIRE_POSTGRES for tests and CI)")
