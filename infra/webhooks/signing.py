"""Secrets, Standard Webhooks signatures, the URL rule at registration, and Retry-After."""

import base64
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from domain.errors import FieldProblem
from infra.webhook_targets import (
    Resolver,
    TargetRefused,
    resolve_target,
    system_resolver,
    target_port,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
USER_AGENT = "chipledger-webhooks/1"


def fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def message_body(event_type: str, timestamp: str, payload: dict[str, Any]) -> str:
    """The delivered JSON, byte for byte the same at every attempt."""
    return json.dumps({"type": event_type, "timestamp": timestamp, "data": payload},
                      separators=(",", ":"), sort_keys=True)


def signed_headers(secrets_: list[str], message_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers, signed with every secret that signs (rotation overlap)."""
    timestamp = int(time.time())
    signatures = " ".join(sign(s, message_id, timestamp, body) for s in secrets_)
    return {"content-type": "application/json", "webhook-id": message_id,
            "webhook-timestamp": str(timestamp), "webhook-signature": signatures,
            "user-agent": USER_AGENT}


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


def retry_after(value: str | None) -> float | None:
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
