"""Webhooks: endpoints, fan-out of the outbox into deliveries, and the dispatcher.

Delivery is at least once, signed per Standard Webhooks, in order per firm and endpoint,
concurrent between chains and endpoints, with exponential backoff and jitter over about
three days. The modules: `endpoints` (what the API reads and changes), `claims` (the
dispatcher's rows), `dispatcher` (the async loop), `schedule` (what an answer means),
`signing`, `transport` (the SSRF rule on the async path).
"""

from infra.webhooks.claims import FANOUT, ClaimStore
from infra.webhooks.dispatcher import CLAIM_SECONDS, Dispatcher
from infra.webhooks.endpoints import DISPATCHER, ROTATION_OVERLAP, Endpoint, Webhooks
from infra.webhooks.schedule import BACKOFF, MAX_ATTEMPTS, MAX_RETRY_AFTER, Claim, Outcome
from infra.webhooks.signing import SECRET_PREFIX, check_url, fingerprint, new_secret, sign
from infra.webhooks.signing import retry_after as _retry_after

__all__ = ["BACKOFF", "CLAIM_SECONDS", "DISPATCHER", "FANOUT", "MAX_ATTEMPTS",
           "MAX_RETRY_AFTER", "ROTATION_OVERLAP", "SECRET_PREFIX", "Claim", "ClaimStore",
           "Dispatcher", "Endpoint", "Outcome", "Webhooks", "_retry_after", "check_url",
           "fingerprint", "new_secret", "sign"]
