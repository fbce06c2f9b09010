"""A real webhook receiver and the ledger through its API, for the webhook tests: the receiver
is a ThreadingHTTPServer on 127.0.0.1 that verifies every delivery with `standardwebhooks`,
answers from a script and can be down (its port bound but not listening)."""

import json
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from fastapi.testclient import TestClient
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from infra.bootstrap import Container
from infra.keys import Role
from infra.runner import ProjectionRunner
from infra.webhooks import Dispatcher
from tests.support.data import H20, H20_RULE

Headers = dict[str, str]
Endpoint = dict[str, Any]  # a registered endpoint as the API answers it, secret included
POSTURE = "posture.changed"
TIMEOUT = 1.0  # the dispatcher's request timeout in these tests


# The receiver ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay: float = 0.0
    retry_after: str | Callable[[], str] | None = None  # a callable is asked when answering


@dataclass(frozen=True)
class Arrival:
    webhook_id: str
    timestamp: str
    signatures: list[str]
    body: bytes
    verified_by: tuple[str, ...]  # which of the receiver's secrets verify it
    reply: Reply
    at: float  # time.monotonic() on arrival
    headers: Headers  # as received, lower-cased names
    wall: float = 0.0  # time.time() on arrival, to compare with a commit's recorded_at

    @property
    def payload(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    @property
    def acknowledged(self) -> bool:
        """The receiver answered 2xx within the dispatcher's timeout."""
        return 200 <= self.reply.status < 300 and self.reply.delay < TIMEOUT


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    receiver: "Receiver"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a sender that hung up mid-answer (timeout, SIGKILL) is part of the tests


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = receiver.arrive(headers, body)
        try:
            if reply.delay:
                receiver.wake.wait(reply.delay)
            self.send_response(reply.status)
            if reply.retry_after is not None:
                self.send_header("Retry-After", reply.retry_after() if callable(
                    reply.retry_after) else reply.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
        except OSError:
            pass  # the dispatcher gave up or died while we were slow
        finally:
            receiver.leave(headers.get("webhook-id", ""))

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Receiver:
    """A webhook receiver on 127.0.0.1. It is down until `start()`: its port is bound but
    nobody listens, so connections are refused (ConnectError)."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.script: deque[Reply] = deque()
        self.default = Reply()
        self.arrivals: list[Arrival] = []
        self.in_flight: Counter[str] = Counter()
        self.overlaps: list[str] = []
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.server: _Server | None = _Server(("127.0.0.1", 0), _Handler,
                                              bind_and_activate=False)
        self.server.receiver = self
        self.server.server_bind()
        self.port = self.server.server_address[1]
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/chipledger"

    def start(self) -> None:
        if self.server is None:  # stopped before: bind the same port again
            self.server = _Server(("127.0.0.1", self.port), _Handler, bind_and_activate=False)
            self.server.receiver = self
            self.server.server_bind()
        self.server.server_activate()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,),
                                       name="webhook-receiver", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.wake.set()
        if self.server is not None:
            if self.thread is not None:
                self.server.shutdown()
                self.thread.join(timeout=5)
                self.thread = None
            self.server.server_close()
            self.server = None

    def arrive(self, headers: Headers, body: bytes) -> Reply:
        verified = []
        for secret in list(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
            verified.append(secret)
        webhook_id = headers.get("webhook-id", "")
        with self.lock:
            reply = self.script.popleft() if self.script else self.default
            if self.in_flight[webhook_id]:
                self.overlaps.append(webhook_id)
            self.in_flight[webhook_id] += 1
            self.arrivals.append(Arrival(
                webhook_id, headers.get("webhook-timestamp", ""),
                headers.get("webhook-signature", "").split(" "), body, tuple(verified), reply,
                time.monotonic(), headers, time.time()))
        return reply

    def leave(self, webhook_id: str) -> None:
        with self.lock:
            self.in_flight[webhook_id] -= 1

    def ids(self) -> list[str]:
        with self.lock:
            return [a.webhook_id for a in self.arrivals]

    def acknowledged(self) -> set[str]:
        with self.lock:
            return {a.webhook_id for a in self.arrivals if a.acknowledged}


# The ledger, through its API ---------------------------------------------------------------------


class Api:
    def __init__(self, client: TestClient, keys: dict[Role, Headers]) -> None:
        self.client, self.keys = client, keys
        self.admin, self.writer = keys[Role.ADMIN], keys[Role.WRITER]

    def record(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.client.post(f"/v1/{path}", json=body, headers=self.writer)
        assert answer.status_code in (200, 201), answer.text
        result: dict[str, Any] = answer.json()
        return result

    def endpoint(self, url: str, event_types: tuple[str, ...] = (POSTURE,),
                 description: str | None = None) -> dict[str, Any]:
        answer = self.client.post("/v1/webhooks/endpoints", headers=self.admin,
                                  json={"url": url, "event_types": list(event_types),
                                        "description": description})
        assert answer.status_code == 201, answer.text
        result: dict[str, Any] = answer.json()
        return result

    def endpoints(self) -> list[dict[str, Any]]:
        answer = self.client.get("/v1/webhooks/endpoints", headers=self.admin)
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["endpoints"]
        return result

    def deliveries(self, endpoint_id: str, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else {}
        answer = self.client.get(f"/v1/webhooks/endpoints/{endpoint_id}/deliveries",
                                 params=params, headers=self.admin)
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()["deliveries"]
        return sorted(result, key=lambda d: seq(d["message_id"]))

    def recover(self, endpoint_id: str, since: str) -> int:
        answer = self.client.post(f"/v1/webhooks/endpoints/{endpoint_id}/recovery",
                                  json={"since": since}, headers=self.admin)
        assert answer.status_code == 200, answer.text
        assert answer.json()["endpoint_id"] == endpoint_id
        return int(answer.json()["requeued"])

    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            page = self.client.get("/v1/events", params={"after": after, "limit": 1000},
                                   headers=self.admin).json()
            events += page["events"]
            after = page["next_after"]
        return events


def seq(message_id: str) -> int:
    """Message ids are msg_<position>_<n>: their total order is (position, n)."""
    _, position, n = message_id.split("_")
    return int(position) * 100_000 + int(n)


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment.replace("Z", "+00:00"))


def utc_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


class Pump:
    """The background work, by hand: project the log, then fan out and deliver."""

    def __init__(self, container: Container, dispatcher: Dispatcher) -> None:
        self.runner = ProjectionRunner(container)
        self.dispatcher = dispatcher

    def step(self) -> None:
        self.runner.catch_up()
        self.dispatcher.step()

    def until(self, condition: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            if condition():
                return
            assert time.monotonic() < deadline, "timed out"
            time.sleep(0.01)

    def for_a_while(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.step()
            time.sleep(0.01)


# The world: firms that receive H20s in China without a licence -------------------------------


def firm(n: int) -> dict[str, Any]:
    return {"id": f"firm-{n}", "name": f"Firm {n}", "hq_country": "CN"}


def shipment(shipment_id: str, firm_id: str, shipped_on: str) -> dict[str, Any]:
    return {"id": shipment_id, "chip_model": "nvidia-h20", "quantity": 800,
            "from_country": "US", "to_country": "CN", "consignee_firm_id": firm_id,
            "shipped_on": shipped_on, "exporter": "NVIDIA"}


def record_rule(api: Api) -> None:
    api.record("chip-models", H20)
    api.record("regulations", H20_RULE)


def violate(api: Api, n: int, shipped_on: str = "2025-06-01", suffix: str = "a"
            ) -> dict[str, Any]:
    """A shipment to firm-n after the H20 rule: a violation from its ship date, recorded today
    (a restatement of the past, and a new violation from today on: two messages)."""
    return api.record("shipments", shipment(f"ship-{n}-{suffix}", f"firm-{n}", shipped_on))


def cure(api: Api, n: int, suffix: str = "a") -> dict[str, Any]:
    """The shipment really left before the rule took effect: compliant again (two messages)."""
    return api.record(f"shipments/ship-{n}-{suffix}/corrections",
                      {"shipped_on": "2025-03-01", "reason": "bill of lading date"})


def subscribe(api: Api, receiver: Receiver, event_types: tuple[str, ...] = (POSTURE,)
              ) -> Endpoint:
    """An endpoint registered for the receiver, which then checks every signature with its
    secret."""
    created = api.endpoint(receiver.url, event_types)
    receiver.secrets = [created["secret"]]
    return created


def assert_fifo_per_firm(arrivals: list[Arrival], deliveries: list[dict[str, Any]]) -> None:
    """No message reaches the receiver before every earlier message of its firm was
    acknowledged; retries of one message may repeat it."""
    by_firm: dict[str, list[str]] = defaultdict(list)
    for d in deliveries:
        by_firm[d["ordering_key"]].append(d["message_id"])
    acknowledged: set[str] = set()
    for arrival in arrivals:
        firm_id = arrival.payload["data"]["firm_id"]
        earlier = {m for m in by_firm[firm_id] if seq(m) < seq(arrival.webhook_id)}
        assert earlier <= acknowledged, (arrival.webhook_id, sorted(earlier - acknowledged))
        if arrival.acknowledged:
            acknowledged.add(arrival.webhook_id)


def kill_9_once(child: "subprocess.Popen[bytes]", ready: Callable[[], bool], what: str,
                timeout: float = 60.0) -> None:
    """Wait until `ready()`, then SIGKILL the child process (which must not exit first)."""
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, what
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        if child.stderr:
            child.stderr.close()
