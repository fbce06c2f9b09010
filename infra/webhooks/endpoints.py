"""Webhook endpoints and what they are sent, as the API reads and changes them.

Endpoints are recorded in the ledger's log (their history is auditable); their secrets and
the deliveries are operational rows beside it, never events. Secrets sign but are never
listed or logged.
"""

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog

from domain.application import Append
from domain.bodies import (
    WebhookEndpointChange,
    WebhookEndpointDisabling,
    WebhookEndpointRegistration,
    WebhookSecretRotation,
)
from domain.errors import InvalidRecordError, RecordNotFoundError
from domain.kinds import Role
from infra.bootstrap import Container
from infra.seal import RecordedBy, Seal, format_time
from infra.service import AppendService
from infra.store import Cursor, Dialect
from infra.webhook_targets import Resolver, system_resolver
from infra.webhooks.backfill import backfill
from infra.webhooks.claims import signing_secrets
from infra.webhooks.operations import ENDPOINT_DISABLED, announce, endpoint_disabled
from infra.webhooks.signing import check_url, fingerprint, new_secret

log = structlog.get_logger("chipledger.webhooks")

ROTATION_OVERLAP = timedelta(hours=24)
# Who records what the dispatcher appends on its own (an endpoint disabled on a 410).
DISPATCHER = RecordedBy("system:webhook-dispatcher", "webhook dispatcher", "system")


@dataclass(frozen=True)
class Endpoint:
    endpoint_id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    created_at: datetime
    disabled_at: datetime | None
    disabled_reason: str | None
    circuit_state: str = "closed"
    consecutive_failures: int = 0
    open_until: datetime | None = None
    circuit_openings: int = 0
    max_per_second: int | None = None


class Webhooks:
    """Endpoints and their deliveries, on either backend."""

    def __init__(self, container: Container, resolver: Resolver = system_resolver) -> None:
        self.dialect: Dialect = container.store.dialect
        self.appends = AppendService(container)
        self.settings = container.settings
        self.resolver = resolver  # the seam tests answer names through (no DNS there)

    @contextmanager
    def _tx(self, commit: bool) -> Iterator[Cursor]:
        with self.dialect.transaction(commit=commit) as cursor:
            yield cursor

    def _sql(self, statement: str) -> str:
        return self.dialect.sql(statement)

    def _now(self) -> datetime:
        return datetime.now(UTC)

    # endpoints --------------------------------------------------------------------------------

    def create(self, url: str, event_types: list[str], description: str | None, *,
               recorded_by: RecordedBy, max_per_second: int | None = None,
               since_position: int | None = None) -> tuple[Endpoint, str]:
        """Register a receiver; with `since_position`, the history after it is queued for
        it (a backfill) once it is registered."""
        problems = check_url(url, self.settings.webhook_allow_local, self.resolver)
        if problems:
            raise InvalidRecordError(problems)
        secret = new_secret()
        endpoint_id = f"wh-{uuid.uuid4().hex[:16]}"
        body = WebhookEndpointRegistration.model_validate(
            {"id": endpoint_id, "url": url, "event_types": event_types,
             "description": description, "secret_fingerprint": fingerprint(secret),
             "max_per_second": max_per_second}, strict=False)
        d = self.dialect

        def store(cursor: Cursor, seals: list[Seal]) -> None:
            now = d.to_db_time(seals[-1].recorded_at)
            cursor.execute(self._sql(
                f"INSERT INTO {d.endpoints_table} (endpoint_id, url, event_types, description, "
                "enabled, created_at, from_position, circuit_state, consecutive_failures, "
                "circuit_openings, max_per_second) "
                "VALUES (%s, %s, %s, %s, 1, %s, %s, 'closed', 0, 0, %s)"),
                (endpoint_id, url, json.dumps(sorted(set(event_types))), description, now,
                 seals[-1].position, max_per_second))
            cursor.execute(self._sql(
                f"INSERT INTO {d.secrets_table} (endpoint_id, secret, fingerprint, created_at) "
                "VALUES (%s, %s, %s, %s)"), (endpoint_id, secret, fingerprint(secret), now))

        self.appends.append([Append("webhook_endpoint", Role.CREATE, body)],
                            recorded_by=recorded_by, side_write=store)
        log.info("webhook_endpoint_created", endpoint_id=endpoint_id, url=url,
                 event_types=event_types)
        if since_position is not None:
            self.backfill(endpoint_id, since_position)
        return self.get(endpoint_id), secret

    def change(self, endpoint_id: str, max_per_second: int | None, *,
               recorded_by: RecordedBy) -> Endpoint:
        """A new rate limit (None: unlimited), recorded in the log."""
        self.get(endpoint_id)
        d = self.dialect
        body = WebhookEndpointChange.model_validate(
            {"effective_from": date.today().isoformat(), "max_per_second": max_per_second},
            strict=False)

        def store(cursor: Cursor, seals: list[Seal]) -> None:
            cursor.execute(self._sql(f"UPDATE {d.endpoints_table} SET max_per_second = %s "
                                     "WHERE endpoint_id = %s"), (max_per_second, endpoint_id))

        self.appends.append([Append("webhook_endpoint", Role.CHANGE, body, endpoint_id)],
                            recorded_by=recorded_by, side_write=store)
        log.info("webhook_endpoint_changed", endpoint_id=endpoint_id,
                 max_per_second=max_per_second)
        return self.get(endpoint_id)

    def backfill(self, endpoint_id: str, since_position: int) -> int:
        """Deliver again, in order, what was recorded after `since_position`."""
        self.get(endpoint_id)
        count = backfill(self.dialect, endpoint_id, since_position)
        log.info("webhook_backfill", endpoint_id=endpoint_id, since_position=since_position,
                 queued=count)
        return count

    def get(self, endpoint_id: str) -> Endpoint:
        if "\x00" in endpoint_id:  # no endpoint has one, and PostgreSQL text cannot hold it
            raise RecordNotFoundError("webhook endpoint", endpoint_id)
        rows = self._select(f"SELECT * FROM {self.dialect.endpoints_table} "
                            "WHERE endpoint_id = %s", (endpoint_id,))
        if not rows:
            raise RecordNotFoundError("webhook endpoint", endpoint_id)
        return self._endpoint(rows[0])

    def endpoints(self) -> list[Endpoint]:
        rows = self._select(f"SELECT * FROM {self.dialect.endpoints_table} "
                            "ORDER BY created_at, endpoint_id")
        return [self._endpoint(r) for r in rows]

    def disable(self, endpoint_id: str, reason: str, *, recorded_by: RecordedBy) -> Endpoint:
        endpoint = self.get(endpoint_id)
        if not endpoint.enabled:
            return endpoint
        d = self.dialect
        body = WebhookEndpointDisabling.model_validate(
            {"effective_from": date.today().isoformat(), "reason": reason}, strict=False)

        def store(cursor: Cursor, seals: list[Seal]) -> None:
            at = seals[-1].recorded_at
            cursor.execute(self._sql(
                f"UPDATE {d.endpoints_table} SET enabled = 0, disabled_at = %s, "
                "disabled_reason = %s WHERE endpoint_id = %s"),
                (d.to_db_time(at), reason, endpoint_id))
            announce(d, cursor, ENDPOINT_DISABLED, endpoint_id,
                     endpoint_disabled(d, cursor, endpoint_id, reason, at), at)

        self.appends.append([Append("webhook_endpoint", Role.END, body, endpoint_id)],
                            recorded_by=recorded_by, side_write=store)
        log.info("webhook_endpoint_disabled", endpoint_id=endpoint_id, reason=reason)
        return self.get(endpoint_id)

    def rotate(self, endpoint_id: str, *, recorded_by: RecordedBy) -> str:
        """A new secret; the old ones keep signing alongside it for 24 hours."""
        self.get(endpoint_id)
        secret = new_secret()
        d = self.dialect
        body = WebhookSecretRotation.model_validate(
            {"secret_fingerprint": fingerprint(secret), "reason": "rotation"}, strict=False)

        def store(cursor: Cursor, seals: list[Seal]) -> None:
            now = seals[-1].recorded_at
            cursor.execute(self._sql(
                f"UPDATE {d.secrets_table} SET expires_at = %s WHERE endpoint_id = %s "
                "AND expires_at IS NULL"), (d.to_db_time(now + ROTATION_OVERLAP), endpoint_id))
            cursor.execute(self._sql(
                f"INSERT INTO {d.secrets_table} (endpoint_id, secret, fingerprint, created_at) "
                "VALUES (%s, %s, %s, %s)"),
                (endpoint_id, secret, fingerprint(secret), d.to_db_time(now)))

        self.appends.append([Append("webhook_endpoint", Role.CORRECT, body, endpoint_id)],
                            recorded_by=recorded_by, side_write=store)
        log.info("webhook_secret_rotated", endpoint_id=endpoint_id)
        return secret

    def signing_secrets(self, endpoint_id: str) -> list[str]:
        return signing_secrets(self.dialect, [endpoint_id])[endpoint_id]

    def _endpoint(self, row: Any) -> Endpoint:
        d = self.dialect
        return Endpoint(row["endpoint_id"], row["url"], json.loads(row["event_types"]),
                        row["description"], bool(row["enabled"]),
                        d.from_db_time(row["created_at"]),
                        _time_or_none(d, row["disabled_at"]), row["disabled_reason"],
                        row["circuit_state"], int(row["consecutive_failures"]),
                        _time_or_none(d, row["open_until"]), int(row["circuit_openings"]),
                        row["max_per_second"])

    def _select(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with self._tx(commit=False) as cursor:
            cursor.execute(self._sql(statement), params)
            return list(cursor.fetchall())

    # deliveries -------------------------------------------------------------------------------

    def deliveries(self, endpoint_id: str, status: str | None, limit: int,
                   after: str | None) -> list[dict[str, Any]]:
        self.get(endpoint_id)
        d = self.dialect
        statement = (f"SELECT * FROM {d.deliveries_table} WHERE endpoint_id = %s")
        params: list[Any] = [endpoint_id]
        if status:
            statement += " AND status = %s"
            params.append(status)
        if after:  # a message id: page on in message order (seq), not in text order
            statement += (f" AND seq > (SELECT seq FROM {d.deliveries_table} "
                          "WHERE endpoint_id = %s AND message_id = %s)")
            params += [endpoint_id, after]
        rows = self._select(statement + " ORDER BY seq LIMIT %s", (*params, limit))
        result = []
        for row in rows:
            attempts = self._select(
                f"SELECT * FROM {d.attempts_table} WHERE endpoint_id = %s AND message_id = %s "
                "ORDER BY attempt", (endpoint_id, row["message_id"]))
            result.append({
                "message_id": row["message_id"], "status": row["status"],
                "attempts": row["attempts"], "ordering_key": row["ordering_key"],
                "next_attempt_at": _text_or_none(d, row["next_attempt_at"]),
                "last_status_code": row["last_status_code"], "last_error": row["last_error"],
                "history": [{"attempt": a["attempt"], "at": format_time(d.from_db_time(a["at"])),
                             "status_code": a["status_code"], "latency_ms": a["latency_ms"],
                             "error": a["error"]} for a in attempts],
            })
        return result

    def recover(self, endpoint_id: str, since: datetime) -> int:
        """Queue again every delivery of the endpoint that failed or died since `since`."""
        self.get(endpoint_id)
        d = self.dialect
        with self._tx(commit=True) as cursor:
            cursor.execute(self._sql(
                f"UPDATE {d.deliveries_table} SET status = 'pending', next_attempt_at = %s, "
                "attempts = 0, claimed_until = NULL, updated_at = %s WHERE endpoint_id = %s "
                "AND status IN ('failed', 'dead') AND updated_at >= %s"),
                (d.to_db_time(self._now()), d.to_db_time(self._now()), endpoint_id,
                 d.to_db_time(since)))
            count = int(cursor.rowcount)
        log.info("webhook_recovery", endpoint_id=endpoint_id, requeued=count)
        return count

    def counts(self) -> tuple[dict[str, int], float | None]:
        """Deliveries by state, and the age in seconds of the oldest pending one."""
        d = self.dialect
        rows = self._select(f"SELECT status, count(*) AS n FROM {d.deliveries_table} "
                            "GROUP BY status")
        oldest = self._select(f"SELECT min(created_at) AS t FROM {d.deliveries_table} "
                              "WHERE status IN ('pending', 'failed')")
        age = None
        if oldest and oldest[0]["t"]:
            age = (self._now() - d.from_db_time(oldest[0]["t"])).total_seconds()
        return {r["status"]: int(r["n"]) for r in rows}, age


def _time_or_none(d: Dialect, value: Any) -> datetime | None:
    return d.from_db_time(value) if value else None


def _text_or_none(d: Dialect, value: Any) -> str | None:
    return format_time(d.from_db_time(value)) if value else None
