"""What an attempt's answer means for its delivery: succeeded, failed (retried after a
backoff with jitter, or after the receiver's Retry-After) or dead. Pure."""

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

# Seconds before each retry: the first within seconds, the last about three days after the
# first attempt; 15 attempts in all.
BACKOFF = (5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200, 43200, 43200, 43200, 28800)
MAX_ATTEMPTS = len(BACKOFF) + 1
MAX_RETRY_AFTER = 86400  # a receiver's Retry-After is honoured up to a day


@dataclass(frozen=True)
class Claim:
    """A delivery this dispatcher holds: it alone sends it until `claimed_until`."""

    endpoint_id: str
    message_id: str
    attempts: int
    url: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    ordering_key: str = ""
    seq: int = 0


@dataclass(frozen=True)
class Outcome:
    claim: Claim
    status: str  # succeeded, failed or dead
    at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int
    next_attempt_at: datetime | None

    @property
    def attempt(self) -> int:
        return self.claim.attempts + 1

    @property
    def counts_against_receiver(self) -> bool:
        """A failure the circuit breaker counts: a timeout, a connection error or a 5xx (a
        4xx is the receiver's answer about one message, not a sign it is down)."""
        return self.status != "succeeded" and (
            self.status_code is None or self.status_code >= 500 or self.status_code == 429)


def judge(claim: Claim, status_code: int | None, error: str | None, latency_ms: int,
          retry_after: float | None, now: datetime, backoff_scale: float) -> Outcome:
    attempt = claim.attempts + 1
    next_at: datetime | None = None
    if status_code is not None and 200 <= status_code < 300:
        status = "succeeded"
    elif status_code == 410 or attempt >= MAX_ATTEMPTS:
        status = "dead"
    else:
        status = "failed"
        delay = BACKOFF[attempt - 1] * random.uniform(0.8, 1.2) * backoff_scale
        next_at = now + timedelta(seconds=max(delay, min(retry_after or 0, MAX_RETRY_AFTER)))
    return Outcome(claim, status, now, status_code, error, latency_ms, next_at)
