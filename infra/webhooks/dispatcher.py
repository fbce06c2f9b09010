"""The dispatcher: one asyncio loop (httpx's async client) delivering many chains at once.

A chain is one endpoint's deliveries for one ordering key (a firm, or the ledger's own
messages): sent one after the other, each only once the one before it was acknowledged, so
order per firm and endpoint holds. Chains run concurrently, bounded overall
(`webhook_max_in_flight`) and per endpoint (`webhook_max_in_flight_per_endpoint`), so a slow
or dead receiver holds only its own slots. An endpoint starts with one chain in flight and
doubles that with each success up to its bound (slow start), dropping back to one on a
failure: a receiver that has not answered yet is not sent a burst it may never acknowledge.

Outcomes are written in batches, beside the loop; a claim's lease is renewed before a send
that could outlast it.
"""

import asyncio
import threading
import time
import uuid
from collections import Counter
from contextlib import suppress
from datetime import UTC, datetime

import httpx
import structlog

from infra.bootstrap import Container
from infra.seal import format_time
from infra.webhook_targets import Resolver, TargetRefused, system_resolver
from infra.webhooks.breaker import BreakerPolicy
from infra.webhooks.claims import ClaimStore, Room, signing_secrets
from infra.webhooks.endpoints import DISPATCHER, Webhooks
from infra.webhooks.pacing import Pacer
from infra.webhooks.schedule import Claim, Outcome, judge
from infra.webhooks.signing import message_body, retry_after, signed_headers
from infra.webhooks.transport import AsyncPinnedTransport

log = structlog.get_logger("chipledger.webhooks")

CLAIM_SECONDS = 60.0  # a lease: longer than the default 15 s request timeout
IDLE_POLL = 0.1  # seconds between looks for new work when there is none
ROUND_GAP = 0.005  # seconds a round waits for other chains to finish with the first


class Dispatcher:
    """Fans the outbox out into deliveries and delivers them. Several dispatchers (threads or
    processes) can share the work: they claim different chains."""

    def __init__(self, container: Container, *, timeout: float = 15.0,
                 backoff_scale: float = 1.0, resolver: Resolver = system_resolver,
                 claim_seconds: float | None = None, max_in_flight: int | None = None,
                 max_per_endpoint: int | None = None) -> None:
        settings = container.settings
        self.webhooks = Webhooks(container)
        self.dialect = container.store.dialect
        self.name = f"dispatcher-{uuid.uuid4().hex[:8]}"
        self.timeout, self.backoff_scale = timeout, backoff_scale
        self.store = ClaimStore(self.dialect, self.name, BreakerPolicy(
            settings.webhook_breaker_failures, settings.webhook_breaker_cooldown,
            probe_lease=timeout + 5.0))
        self.claim_seconds = claim_seconds or CLAIM_SECONDS
        self.max_in_flight = max_in_flight or settings.webhook_max_in_flight
        self.max_per_endpoint = max_per_endpoint or settings.webhook_max_in_flight_per_endpoint
        self.transport = AsyncPinnedTransport(
            resolver, settings.webhook_allow_local,
            limits=httpx.Limits(max_connections=self.max_in_flight,
                                max_keepalive_connections=self.max_per_endpoint))
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                        transport=self.transport)
        self.loop = asyncio.new_event_loop()
        self.windows: dict[str, int] = {}  # chains an endpoint may have in flight now
        self.in_flight: Counter[str] = Counter()
        self.sendable: set[str] = set()  # enabled, circuit closed, or probed by us
        self.probing: set[str] = set()  # endpoints whose probe this dispatcher sends
        self.rates: dict[str, int | None] = {}  # max_per_second of each enabled endpoint
        self.pacer = Pacer()
        self.secrets: dict[str, list[str]] = {}
        self.sent: Counter[str] = Counter()  # attempts sent, by endpoint
        self.chains: set[asyncio.Task[None]] = set()
        self.outcomes: list[Outcome] = []
        self.released: list[Claim] = []
        self.flushing: asyncio.Task[None] | None = None
        self.wake: asyncio.Event | None = None

    # driving it -------------------------------------------------------------------------------

    def step(self) -> int:
        """Fan out, deliver what is due (concurrently) and record it; returns how much work
        was done. For tests and one-off runs: `run` is the service's loop."""
        return self.loop.run_until_complete(self._step())

    async def _step(self) -> int:
        work = await self._round()
        while self.chains:
            await asyncio.wait(set(self.chains))
        await self._flushed()
        return work

    def run(self, stop: threading.Event, poll_interval: float = 0.5) -> None:
        try:
            self.loop.run_until_complete(self._serve(stop, min(poll_interval, IDLE_POLL)))
        finally:
            self.close()

    async def _serve(self, stop: threading.Event, idle: float) -> None:
        self.wake = asyncio.Event()
        try:
            while not stop.is_set():
                try:
                    work = await self._round()
                except Exception:
                    log.exception("dispatcher_step_failed")
                    work = 0
                if not work:
                    await self._idle(idle)
        finally:
            await self._shutdown()

    async def _idle(self, seconds: float) -> None:
        """Until a chain finishes or outcomes are written (room for more), or `seconds`;
        then a moment more, so that one round claims for several finished chains."""
        assert self.wake is not None
        self.wake.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        await asyncio.sleep(ROUND_GAP)

    async def _shutdown(self) -> None:
        """In-flight sends are abandoned (their claims released, so another dispatcher
        sends them again: at least once); what was answered is recorded."""
        for task in self.chains:
            task.cancel()
        if self.chains:
            await asyncio.wait(set(self.chains))
        await self._flushed()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()

    # one round: fan out, claim, start chains ---------------------------------------------------

    async def _round(self) -> int:
        room = self.max_in_flight - sum(self.in_flight.values())
        fanned = await asyncio.to_thread(self.store.fan_out)
        if room <= 0:
            return fanned
        rooms = {e: self._room(e) for e in self.windows}
        busy = [e for e, n in rooms.items() if n <= 0]
        chains, closed, probes, self.rates, secrets = await asyncio.to_thread(
            self._claim, lambda e: rooms.get(e, 1), busy, room)
        self.probing |= probes  # until their chain is through: the probe is theirs
        self.sendable = closed | self.probing
        self.secrets.update(secrets)
        for chain in chains:
            self._start(chain)
        return fanned + len(chains)

    def _claim(self, room: Room, busy: list[str], limit: int
               ) -> tuple[list[list[Claim]], set[str], set[str], dict[str, int | None],
                          dict[str, list[str]]]:
        chains, probes = self.store.claim(room, busy, self.claim_seconds, limit)
        secrets = signing_secrets(self.dialect, (c[0].endpoint_id for c in chains))
        rates, closed = self.store.sendable()
        return chains, closed, probes, rates, secrets

    def _room(self, endpoint_id: str) -> int:
        return self.windows.get(endpoint_id, 1) - self.in_flight[endpoint_id]

    def _start(self, chain: list[Claim]) -> None:
        endpoint_id = chain[0].endpoint_id
        self.in_flight[endpoint_id] += 1
        self.windows.setdefault(endpoint_id, 1)
        task = self.loop.create_task(self._deliver_chain(chain, time.monotonic()))
        self.chains.add(task)
        task.add_done_callback(lambda t: self._finished(t, endpoint_id))

    def _finished(self, task: "asyncio.Task[None]", endpoint_id: str) -> None:
        self.chains.discard(task)
        self.in_flight[endpoint_id] -= 1
        self.probing.discard(endpoint_id)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook_chain_failed", endpoint_id=endpoint_id,
                      error=repr(task.exception()))
        if self.wake is not None:
            self.wake.set()

    # a chain: its deliveries one after the other ------------------------------------------------

    async def _deliver_chain(self, chain: list[Claim], claimed_at: float) -> None:
        lease_until: float | None = claimed_at + self.claim_seconds
        for i, claim in enumerate(chain):
            rest = chain[i:]
            try:
                lease_until = await self._keep_lease(rest, lease_until)
                if lease_until is None or claim.endpoint_id not in self.sendable:
                    self._queue(released=rest)
                    return
                await self.pacer.wait(claim.endpoint_id, self.rates.get(claim.endpoint_id))
                outcome = await self._attempt(claim)
            except asyncio.CancelledError:
                self._queue(released=rest)
                raise
            self._queue(outcome)
            self._learn(outcome)
            if outcome.status_code == 410:
                await self._gone(claim.endpoint_id)
            if outcome.status != "succeeded":
                self._queue(released=chain[i + 1:])
                return

    async def _keep_lease(self, rest: list[Claim], lease_until: float | None) -> float | None:
        """The lease's end once it covers the next send (renewed when it might not); None
        when the claims are no longer this dispatcher's."""
        assert lease_until is not None
        if lease_until - time.monotonic() > self.timeout + 1.0:
            return lease_until
        renewed_at = time.monotonic()
        if await asyncio.to_thread(self.store.renew, rest, self.claim_seconds):
            return renewed_at + self.claim_seconds
        return None

    async def _attempt(self, claim: Claim) -> Outcome:
        body = message_body(claim.event_type, format_time(claim.created_at), claim.payload)
        headers = signed_headers(self.secrets.get(claim.endpoint_id, []), claim.message_id,
                                 body)
        started = time.perf_counter()
        status_code, error, wait = None, None, None
        self.sent[claim.endpoint_id] += 1
        try:
            response = await self.client.post(claim.url, content=body, headers=headers)
            status_code = response.status_code
            wait = retry_after(response.headers.get("retry-after"))
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # TargetRefused included
            error = f"{type(exc).__name__}: {exc}"[:500]
            if isinstance(exc, TargetRefused):  # a receiver's name moved somewhere internal
                log.warning("webhook_target_refused", endpoint_id=claim.endpoint_id,
                            reason=str(exc))
        latency = int((time.perf_counter() - started) * 1000)
        outcome = judge(claim, status_code, error, latency, wait, datetime.now(UTC),
                        self.backoff_scale)
        log.info("webhook_attempt", endpoint_id=claim.endpoint_id, message_id=claim.message_id,
                 attempt=outcome.attempt, status_code=status_code, latency_ms=latency,
                 error=error, outcome=outcome.status)
        return outcome

    def _learn(self, outcome: Outcome) -> None:
        """Slow start: double the endpoint's window on a success, back to one on a failure."""
        endpoint_id = outcome.claim.endpoint_id
        window = self.windows.get(endpoint_id, 1)
        if outcome.status == "succeeded":
            self.windows[endpoint_id] = min(self.max_per_endpoint, window * 2)
        elif outcome.counts_against_receiver:
            self.windows[endpoint_id] = 1

    async def _gone(self, endpoint_id: str) -> None:
        self.sendable.discard(endpoint_id)  # no other chain of it sends from now on
        await self._flushed()  # the delivery is dead before the endpoint is disabled
        await asyncio.to_thread(self.webhooks.disable, endpoint_id,
                                "the receiver answered 410 Gone", recorded_by=DISPATCHER)

    # outcomes, written in batches -------------------------------------------------------------

    def _queue(self, outcome: Outcome | None = None, released: list[Claim] | None = None
               ) -> None:
        if outcome is not None:
            self.outcomes.append(outcome)
        self.released += released or []
        if (self.outcomes or self.released) and (self.flushing is None or self.flushing.done()):
            self.flushing = self.loop.create_task(self._flush())

    async def _flush(self) -> None:
        while self.outcomes or self.released:
            outcomes, released = self.outcomes, self.released
            self.outcomes, self.released = [], []
            try:
                opened = await asyncio.to_thread(self.store.record, outcomes, released)
                self.sendable.difference_update(opened)  # its other chains stop too
                for endpoint_id in opened:
                    log.warning("webhook_circuit_opened", endpoint_id=endpoint_id)
            except Exception:  # their leases lapse: sent again, at least once
                log.exception("webhook_outcomes_not_recorded", count=len(outcomes))
        if self.wake is not None:
            self.wake.set()

    async def _flushed(self) -> None:
        while self.flushing is not None and not self.flushing.done():
            await asyncio.shield(self.flushing)

