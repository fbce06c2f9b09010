"""Webhooks: endpoints, fan-out of the outbox into deliveries, and the dispatcher.

Endpoints are recorded in the ledger's log (their history is auditable); their secrets and
the deliveries are operational rows beside it, never events. Secrets sign but are never
listed or logged. Delivery is at least once, signed per Standard Webhooks, in order per
firm and endpoint, with exponential backoff and jitter over about three days.
"""

import base64
import hashlib
import hmac
import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from domain.application import Append
from domain.bodies import (
    WebhookEndpointDisabling,
    WebhookEndpointRegistration,
    WebhookSecretRotation,
)
from domain.errors import FieldProblem, InvalidRecordError, RecordNotFoundError
from domain.kinds import Role
from infra.bootstrap import Container
from infra.seal import RecordedBy, Seal, format_time
from infra.service import AppendService
from infra.store import Cursor, Dialect
from infra.webhook_targets import (
    PinnedTransport,
    Resolver,
    TargetRefused,
    resolve_target,
    system_resolver,
    target_port,
)
from projections.outbox import first_seq_after

log = structlog.get_logger("chipledger.webhooks")

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
ROTATION_OVERLAP = timedelta(hours=24)
# Who records what the dispatcher appends on its own (an endpoint disabled on a 410).
DISPATCHER = RecordedBy("system:webhook-dispatcher", "webhook dispatcher", "system")
# Seconds before each retry: the first within seconds, the last about three days after the
# first attempt; 15 attempts in all.
BACKOFF = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 43200, 43200, 43200, 28800)
MAX_ATTEMPTS = len(BACKOFF) + 1
CLAIM_SECONDS = 60
MAX_RETRY_AFTER = 86400  # a receiver's Retry-After is honoured up to a day
FANOUT = "webhooks-fanout"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def check_url(url: str, allow_local: bool, resolver: Resolver = system_resolver
              ) -> list[FieldProblem]:
    """http(s) with a host and a port in range, parsed as the dispatcher will parse it; unless
    local receivers are allowed, every address the host resolves to is globally routable."""
    loc = ("url",)
    try:
        parts = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return [FieldProblem(loc, f"not a URL: {exc}", "url_invalid")]
    if parts.scheme not in ("http", "https") or not parts.raw_host:
        return [FieldProblem(loc, "use an http:// or https:// URL with a host", "url_scheme")]
    try:
        port = target_port(parts)
        if not allow_local:
            resolve_target(parts.raw_host.decode("ascii"), port, resolver, allow_local=False)
    except TargetRefused as refused:
        return [FieldProblem(loc, str(refused), refused.kind)]
    return []


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
               recorded_by: RecordedBy) -> tuple[Endpoint, str]:
        problems = check_url(url, self.settings.webhook_allow_local, self.resolver)
        if problems:
            raise InvalidRecordError(problems)
        secret = new_secret()
        endpoint_id = f"wh-{uuid.uuid4().hex[:16]}"
        body = WebhookEndpointRegistration.model_validate(
            {"id": endpoint_id, "url": url, "event_types": event_types,
             "description": description, "secret_fingerprint": fingerprint(secret)},
            strict=False)
        d = self.dialect

        def store(cursor: Cursor, seals: list[Seal]) -> None:
            now = d.to_db_time(seals[-1].recorded_at)
            cursor.execute(self._sql(
                f"INSERT INTO {d.endpoints_table} (endpoint_id, url, event_types, description, "
                "enabled, created_at, from_position) VALUES (%s, %s, %s, %s, 1, %s, %s)"),
                (endpoint_id, url, json.dumps(sorted(set(event_types))), description, now,
                 seals[-1].position))
            cursor.execute(self._sql(
                f"INSERT INTO {d.secrets_table} (endpoint_id, secret, fingerprint, created_at) "
                "VALUES (%s, %s, %s, %s)"), (endpoint_id, secret, fingerprint(secret), now))

        self.appends.append([Append("webhook_endpoint", Role.CREATE, body)],
                            recorded_by=recorded_by, side_write=store)
        log.info("webhook_endpoint_created", endpoint_id=endpoint_id, url=url,
                 event_types=event_types)
        return self.get(endpoint_id), secret

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
            cursor.execute(self._sql(
                f"UPDATE {d.endpoints_table} SET enabled = 0, disabled_at = %s, "
                "disabled_reason = %s WHERE endpoint_id = %s"),
                (d.to_db_time(seals[-1].recorded_at), reason, endpoint_id))

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
        now = self.dialect.to_db_time(self._now())
        rows = self._select(
            f"SELECT secret FROM {self.dialect.secrets_table} WHERE endpoint_id = %s AND "
            "(expires_at IS NULL OR expires_at > %s) ORDER BY created_at DESC",
            (endpoint_id, now))
        return [r["secret"] for r in rows]

    def _endpoint(self, row: Any) -> Endpoint:
        d = self.dialect
        return Endpoint(row["endpoint_id"], row["url"], json.loads(row["event_types"]),
                        row["description"], bool(row["enabled"]),
                        d.from_db_time(row["created_at"]),
                        d.from_db_time(row["disabled_at"]) if row["disabled_at"] else None,
                        row["disabled_reason"])

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
                "next_attempt_at": _time_or_none(d, row["next_attempt_at"]),
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


def _time_or_none(d: Dialect, value: Any) -> str | None:
    return format_time(d.from_db_time(value)) if value else None


@dataclass(frozen=True)
class Claim:
    endpoint_id: str
    message_id: str
    attempts: int
    url: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime


class Dispatcher:
    """Fans the outbox out into deliveries and delivers them. Several dispatchers can share
    the work on PostgreSQL: claims are taken FOR UPDATE SKIP LOCKED and leased."""

    def __init__(self, container: Container, *, timeout: float = 15.0,
                 backoff_scale: float = 1.0, resolver: Resolver = system_resolver) -> None:
        self.webhooks = Webhooks(container)
        self.dialect = container.store.dialect
        self.postgres = container.settings.backend == "postgres"
        self.timeout = timeout
        self.claim_seconds = CLAIM_SECONDS  # longer than the default 15 s request timeout
        self.backoff_scale = backoff_scale
        self.name = f"dispatcher-{uuid.uuid4().hex[:8]}"
        # Every delivery resolves the host, checks each address and connects to one of them.
        transport = PinnedTransport(resolver, container.settings.webhook_allow_local)
        self.client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def close(self) -> None:
        self.client.close()

    def _sql(self, statement: str) -> str:
        return self.dialect.sql(statement)

    def fan_out(self, limit: int = 1000) -> int:
        """Turn new outbox messages into deliveries for the endpoints subscribed to them."""
        d = self.dialect
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self._sql(f"SELECT position FROM {d.tracking_table} WHERE name = %s"),
                           (FANOUT,))
            row = cursor.fetchone()
            seen = int(row["position"]) if row else 0
            cursor.execute(self._sql(
                f"SELECT message_id, seq, event_type, ordering_key, created_at FROM "
                f"{d.outbox_table} WHERE seq > %s ORDER BY seq LIMIT %s"), (seen, limit))
            messages = list(cursor.fetchall())
            if not messages:
                return 0
            cursor.execute(f"SELECT endpoint_id, event_types, from_position FROM "
                           f"{d.endpoints_table} WHERE enabled = 1")
            endpoints = list(cursor.fetchall())
            now = d.to_db_time(datetime.now(UTC))
            rows = [(e["endpoint_id"], m["message_id"], m["seq"], m["ordering_key"], now, now,
                     now)
                    for m in messages for e in endpoints
                    if m["event_type"] in json.loads(e["event_types"])
                    and m["seq"] >= first_seq_after(int(e["from_position"]))]
            if rows:
                cursor.executemany(self._sql(
                    f"INSERT INTO {d.deliveries_table} (endpoint_id, message_id, seq, "
                    "ordering_key, status, attempts, next_attempt_at, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s, 'pending', 0, %s, %s, %s) ON CONFLICT DO NOTHING"),
                    rows)
            reached = int(messages[-1]["seq"])
            if row:
                cursor.execute(self._sql(f"UPDATE {d.tracking_table} SET position = %s "
                                         "WHERE name = %s AND position = %s"),
                               (reached, FANOUT, seen))
            else:
                cursor.execute(self._sql(f"INSERT INTO {d.tracking_table} (name, position) "
                                         "VALUES (%s, %s) ON CONFLICT DO NOTHING"),
                               (FANOUT, reached))
        return len(messages)

    def claim(self, limit: int = 10) -> list[Claim]:
        """Due deliveries whose earlier messages (same endpoint and firm) are all through."""
        d = self.dialect
        now = datetime.now(UTC)
        lock = " FOR UPDATE OF d SKIP LOCKED" if self.postgres else ""
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self._sql(
                f"SELECT d.endpoint_id, d.message_id, d.attempts, e.url, o.event_type, "
                f"o.payload, o.created_at FROM {d.deliveries_table} d "
                f"JOIN {d.endpoints_table} e ON e.endpoint_id = d.endpoint_id "
                f"JOIN {d.outbox_table} o ON o.message_id = d.message_id "
                "WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= %s "
                "AND (d.claimed_until IS NULL OR d.claimed_until < %s) AND e.enabled = 1 "
                f"AND NOT EXISTS (SELECT 1 FROM {d.deliveries_table} p "
                "WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key "
                "AND p.seq < d.seq AND p.status IN ('pending', 'failed')) "
                f"ORDER BY d.seq LIMIT %s{lock}"),
                (d.to_db_time(now), d.to_db_time(now), limit))
            rows = list(cursor.fetchall())
            until = d.to_db_time(now + timedelta(seconds=self.claim_seconds))
            for row in rows:
                cursor.execute(self._sql(
                    f"UPDATE {d.deliveries_table} SET claimed_until = %s, claimed_by = %s "
                    "WHERE endpoint_id = %s AND message_id = %s"),
                    (until, self.name, row["endpoint_id"], row["message_id"]))
        return [Claim(r["endpoint_id"], r["message_id"], int(r["attempts"]), r["url"],
                      r["event_type"], json.loads(r["payload"]), d.from_db_time(r["created_at"]))
                for r in rows]

    def deliver(self, claim: Claim) -> str:
        """One attempt; returns the delivery's new status."""
        body = json.dumps({"type": claim.event_type, "timestamp": format_time(claim.created_at),
                           "data": claim.payload}, separators=(",", ":"), sort_keys=True)
        timestamp = int(time.time())
        signatures = " ".join(sign(s, claim.message_id, timestamp, body)
                              for s in self.webhooks.signing_secrets(claim.endpoint_id))
        headers = {"content-type": "application/json", "webhook-id": claim.message_id,
                   "webhook-timestamp": str(timestamp), "webhook-signature": signatures,
                   "user-agent": "chipledger-webhooks/1"}
        started = time.perf_counter()
        status_code, error, retry_after = None, None, None
        try:
            response = self.client.post(claim.url, content=body, headers=headers)
            status_code = response.status_code
            retry_after = _retry_after(response.headers.get("retry-after"))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # TargetRefused included
            error = f"{type(exc).__name__}: {exc}"[:500]
            if isinstance(exc, TargetRefused):  # a receiver's name moved somewhere internal
                log.warning("webhook_target_refused", endpoint_id=claim.endpoint_id,
                            reason=str(exc))
        latency = int((time.perf_counter() - started) * 1000)
        status = self._record(claim, status_code, error, latency, retry_after)
        log.info("webhook_attempt", endpoint_id=claim.endpoint_id, message_id=claim.message_id,
                 attempt=claim.attempts + 1, status_code=status_code, latency_ms=latency,
                 error=error, outcome=status)
        if status_code == 410:
            self.webhooks.disable(claim.endpoint_id, "the receiver answered 410 Gone",
                                  recorded_by=DISPATCHER)
        return status

    def _record(self, claim: Claim, status_code: int | None, error: str | None,
                latency: int, retry_after: float | None) -> str:
        d = self.dialect
        now = datetime.now(UTC)
        attempt = claim.attempts + 1
        next_at: datetime | None = None
        if status_code is not None and 200 <= status_code < 300:
            status = "succeeded"
        elif status_code == 410 or attempt >= MAX_ATTEMPTS:
            status = "dead"
        else:
            status = "failed"
            delay = BACKOFF[attempt - 1] * random.uniform(0.8, 1.2) * self.backoff_scale
            next_at = now + timedelta(seconds=max(delay, min(retry_after or 0,
                                                              MAX_RETRY_AFTER)))
        with self.dialect.transaction(commit=True) as cursor:
            # A recovery starts `attempts` again from 0: number the history after the
            # attempts already recorded, or the new ones would collide and be dropped.
            cursor.execute(self._sql(
                f"SELECT COALESCE(MAX(attempt), 0) AS n FROM {d.attempts_table} "
                "WHERE endpoint_id = %s AND message_id = %s"),
                (claim.endpoint_id, claim.message_id))
            recorded = cursor.fetchone()
            number = int(recorded["n"]) + 1 if recorded else attempt
            cursor.execute(self._sql(
                f"INSERT INTO {d.attempts_table} (endpoint_id, message_id, attempt, at, "
                "status_code, latency_ms, error) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING"),
                (claim.endpoint_id, claim.message_id, number, d.to_db_time(now), status_code,
                 latency, error))
            cursor.execute(self._sql(
                f"UPDATE {d.deliveries_table} SET status = %s, attempts = %s, "
                "next_attempt_at = %s, claimed_until = NULL, claimed_by = NULL, "
                "last_status_code = %s, last_error = %s, updated_at = %s "
                # Only while the claim is still ours: a dispatcher that took a lapsed claim
                # over (or a recovery) now owns the outcome; ours stays in the history.
                "WHERE endpoint_id = %s AND message_id = %s AND claimed_by = %s"),
                (status, attempt, d.to_db_time(next_at) if next_at else None, status_code,
                 error, d.to_db_time(now), claim.endpoint_id, claim.message_id, self.name))
        return status

    def step(self) -> int:
        """Fan out, then deliver what is due; returns how much work was done."""
        work = self.fan_out()
        for claim in self.claim():
            if self._renew(claim):
                self.deliver(claim)
            work += 1
        return work

    def _renew(self, claim: Claim) -> bool:
        """Just before sending, extend the claim if it is still this dispatcher's and the
        endpoint still enabled. The deliveries of a batch are sent one after the other: a
        slow receiver can make a later one's claim lapse and another dispatcher take it
        (a concurrent duplicate, out of order), or a 410 can disable the endpoint."""
        d = self.dialect
        until = datetime.now(UTC) + timedelta(seconds=self.claim_seconds)
        with self.dialect.transaction(commit=True) as cursor:
            cursor.execute(self._sql(
                f"UPDATE {d.deliveries_table} SET claimed_until = %s WHERE endpoint_id = %s "
                "AND message_id = %s AND claimed_by = %s AND attempts = %s "
                "AND status IN ('pending', 'failed') AND EXISTS (SELECT 1 FROM "
                f"{d.endpoints_table} e WHERE e.endpoint_id = %s AND e.enabled = 1)"),
                (d.to_db_time(until), claim.endpoint_id, claim.message_id, self.name,
                 claim.attempts, claim.endpoint_id))
            return int(cursor.rowcount) == 1

    def run(self, stop: threading.Event, poll_interval: float = 0.5) -> None:
        while not stop.is_set():
            try:
                if self.step():
                    continue
            except Exception:
                log.exception("dispatcher_step_failed")
            stop.wait(poll_interval)
        self.close()


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    seconds = value.strip()
    if seconds.isascii() and seconds.isdigit():  # str.isdigit alone takes "²", which float refuses
        return float(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
