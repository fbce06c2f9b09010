"""Webhook targets (api.md, Webhooks): a webhook goes only to a globally routable address,
checked when its endpoint is registered and again at every delivery, and the connection goes
to the address that was checked. On SQLite and on PostgreSQL, through the real app, with a
real receiver on 127.0.0.1 and a real TLS server for the name checks.

This machine has no DNS: names are answered by `tests.support.dns.Dns` through the resolver seam
infra/webhooks.py, the function the app and the dispatcher resolve hosts with.
"""

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient

from api.app import create_app
from infra.bootstrap import bootstrap
from infra.keys import KeyRing, Role
from infra.settings import Settings
from infra.webhook_targets import PinnedTransport, TargetRefused
from infra.webhooks import BACKOFF, Dispatcher
from tests.support.dns import Dns
from tests.support.webhooks import TIMEOUT, Api, Pump, Receiver, firm, parse

APPENDED = "ledger.appended"
GLOBAL = "93.184.215.14"  # globally routable; nothing here ever connects to it
GLOBAL_V6 = "2606:4700:4700::1111"


@contextmanager
def ledger(settings: Settings, dns: Dns, allow_local: bool,
           backoff_scale: float = 1.0) -> Iterator[tuple[Api, Pump]]:
    """The app without background workers, and a dispatcher driven by hand; both resolve
    names through `dns`."""
    container = bootstrap(settings.model_copy(update={
        "webhook_allow_local": allow_local, "webhook_timeout": TIMEOUT}))
    ring = KeyRing(container.store)
    keys = {role: {"Authorization": f"Bearer {ring.create(role)[1]}"} for role in Role}
    app = create_app(container=container, workers=False)
    dispatcher = Dispatcher(container, timeout=TIMEOUT, backoff_scale=backoff_scale,
                            resolver=dns.resolve)
    try:
        with TestClient(app) as client:
            app.state.webhooks.resolver = dns.resolve  # wired when the app started
            yield Api(client, keys), Pump(container, dispatcher)
    finally:
        dispatcher.close()
        container.close()


@pytest.fixture
def dns() -> Dns:
    return Dns()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    built = Receiver()
    built.start()
    try:
        yield built
    finally:
        built.stop()


def register(api: Api, url: str) -> httpx.Response:
    answer: httpx.Response = api.client.post("/v1/webhooks/endpoints", headers=api.admin,
                                             json={"url": url, "event_types": [APPENDED]})
    return answer


def head(api: Api) -> int:
    position: int = api.client.get("/v1/integrity", headers=api.admin).json()["head_position"]
    return position


def assert_refused(api: Api, answer: httpx.Response, field: str, kind: str, said: str,
                   head_before: int) -> None:
    """A 422 problem naming the field, and nothing written: no event, no endpoint."""
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    [error] = answer.json()["errors"]
    assert (error["field"], error["type"]) == (field, kind)
    assert said in error["msg"]
    assert head(api) == head_before
    assert api.endpoints() == []


# 1. Registration -------------------------------------------------------------------------------


class TestRegistration:
    @pytest.mark.parametrize(("url", "said"), [
        ("http://100.64.0.1/", "shared address space (RFC 6598)"),
        ("http://100.100.100.200/latest/meta-data/", "shared address space (RFC 6598)"),
        ("http://[2002:7f00:1::]/", "the 6to4 form of 127.0.0.1, loopback"),
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",
         "the NAT64 form of 169.254.169.254, link-local"),
        ("https://[::ffff:a00:1]/hooks", "the IPv4-mapped form of 10.0.0.1, private"),
        ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hooks", "Teredo"),
        ("http://[64:ff9b:1::808:808]/", "local-use NAT64"),
        ("http://[::7f00:1]/", "IPv4-compatible"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff0e::1]/", "multicast"),
        ("http://metadata.example/computeMetadata/v1/",
         "metadata.example resolves to 100.100.100.200, which is shared address space"),
    ])
    def test_a_target_that_is_not_globally_routable_is_refused(
        self, settings: Settings, dns: Dns, url: str, said: str
    ) -> None:
        # One of the name's addresses is global, the other is not: that is enough to refuse.
        dns.table["metadata.example"] = [GLOBAL, "100.100.100.200"]
        with ledger(settings, dns, allow_local=False) as (api, _):
            assert_refused(api, register(api, url), "body.url", "url_local", said, head(api))

    def test_a_name_that_does_not_resolve_is_refused(self, settings: Settings,
                                                     dns: Dns) -> None:
        with ledger(settings, dns, allow_local=False) as (api, _):
            assert_refused(api, register(api, "https://nowhere.example/hooks"), "body.url",
                           "url_unresolvable", "nowhere.example does not resolve", head(api))

    @pytest.mark.parametrize("allow_local", [False, True], ids=["strict", "allow_local"])
    @pytest.mark.parametrize(("url", "kind", "said"), [
        ("https://example.com:99999/x", "url_port", "port 99999 is not between 1 and 65535"),
        ("http://example.com:0/x", "url_port", "port 0 is not between 1 and 65535"),
        ("http://[::1/x", "url_invalid", "not a URL"),
        # refused before it is parsed, as a control character in any text is
        ("http://exa\u0000mple.com/x", "control_character", "U+0000"),
        ("http://example.com/\u0000", "control_character", "U+0000"),
    ])
    def test_a_url_that_cannot_be_delivered_to_is_a_422_whatever_allow_local_says(
        self, settings: Settings, dns: Dns, allow_local: bool, url: str, kind: str, said: str
    ) -> None:
        dns.table["example.com"] = [GLOBAL]
        with ledger(settings, dns, allow_local=allow_local) as (api, _):
            assert_refused(api, register(api, url), "body.url", kind, said, head(api))

    @pytest.mark.parametrize("url", [
        f"https://[{GLOBAL_V6}]/hooks",
        "https://[::ffff:5db8:d70e]/hooks",  # IPv4-mapped 93.184.215.14
        "https://[64:ff9b::5db8:d70e]/hooks",  # NAT64 of 93.184.215.14
        "https://[2002:5db8:d70e::1]/hooks",  # 6to4 of 93.184.215.14
        "http://hooks.example:8080/in",
    ])
    def test_a_globally_routable_target_is_accepted(self, settings: Settings, dns: Dns,
                                                    url: str) -> None:
        dns.table["hooks.example"] = [GLOBAL, GLOBAL_V6]
        with ledger(settings, dns, allow_local=False) as (api, _):
            answer = register(api, url)
            assert answer.status_code == 201, answer.text
            assert [e["url"] for e in api.endpoints()] == [url]


class TestDeliveryQueries:
    def test_a_cursor_that_is_not_a_message_id_is_a_422_naming_it(
        self, settings: Settings, dns: Dns
    ) -> None:
        with ledger(settings, dns, allow_local=True) as (api, _):
            endpoint_id = register(api, "http://127.0.0.1:9/hooks").json()["id"]
            for cursor in ("\u0000", "msg_1_1\u0000", "not-a-message"):
                answer = api.client.get(f"/v1/webhooks/endpoints/{endpoint_id}/deliveries",
                                        params={"cursor": cursor}, headers=api.admin)
                assert answer.status_code == 422, (cursor, answer.text)
                assert answer.headers["content-type"].startswith("application/problem+json")
                assert [e["field"] for e in answer.json()["errors"]] == ["query.cursor"]

    def test_an_endpoint_id_with_a_nul_names_no_endpoint(self, settings: Settings,
                                                         dns: Dns) -> None:
        with ledger(settings, dns, allow_local=True) as (api, _):
            before = head(api)
            base = "/v1/webhooks/endpoints/wh-%00"
            for method, path, body in [
                ("GET", base, None), ("DELETE", base, None),
                ("POST", f"{base}/secret-rotation", None), ("GET", f"{base}/deliveries", None),
                ("POST", f"{base}/recovery", {"since": "2025-01-01T00:00:00Z"})]:
                answer = api.client.request(method, path, json=body, headers=api.admin)
                assert answer.status_code == 404, (method, path, answer.text)
                assert answer.headers["content-type"].startswith("application/problem+json")
            assert head(api) == before


# 2. Delivery: the name is resolved and checked again, and the checked address is used ---------


def history(api: Api, endpoint_id: str) -> list[dict[str, Any]]:
    [delivery] = api.deliveries(endpoint_id)
    attempts: list[dict[str, Any]] = delivery["history"]
    return attempts


class TestDnsRebinding:
    def test_a_name_that_now_resolves_to_loopback_is_never_delivered_to(
        self, settings: Settings, dns: Dns, receiver: Receiver
    ) -> None:
        url = f"http://hooks.example:{receiver.port}/hooks/chipledger"
        with ledger(settings, dns, allow_local=False) as (api, pump):
            # Step 1: the name resolves to a global address: the endpoint is accepted.
            dns.table["hooks.example"] = [GLOBAL]
            endpoint_id = register(api, url).json()["id"]

            # Step 2: a firm is recorded: one ledger.appended message to deliver.
            api.record("firms", firm(1))

            # Step 3: the name now resolves to 127.0.0.1, where a receiver listens: the
            # attempt fails on the refusal, and nothing reaches the receiver.
            dns.table["hooks.example"] = ["127.0.0.1"]
            pump.until(lambda: len(history(api, endpoint_id)) == 1)
            [delivery] = api.deliveries(endpoint_id)
            [attempt] = delivery["history"]
            refused = ("TargetRefused: hooks.example resolves to 127.0.0.1, which is loopback: "
                       "not a globally routable address")
            assert attempt["error"].startswith(refused)
            assert attempt["status_code"] is None
            assert receiver.arrivals == []

            # Step 4: it counts as a failure: the next attempt waits out the first backoff.
            assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
            assert delivery["last_error"].startswith(refused)
            wait = parse(delivery["next_attempt_at"]) - parse(attempt["at"])
            assert wait >= dt.timedelta(seconds=BACKOFF[0] * 0.8)

            # Step 5: requeued, with the name answering a global address and 127.0.0.1, it is
            # refused again: every address the name resolves to is checked.
            dns.table["hooks.example"] = [GLOBAL, "127.0.0.1"]
            assert api.recover(endpoint_id, "2000-01-01T00:00:00Z") == 1
            pump.until(lambda: len(history(api, endpoint_id)) == 2)
            assert history(api, endpoint_id)[1]["error"].startswith(refused)
            assert receiver.arrivals == []


class TestPinnedConnections:
    def test_with_allow_local_the_pinned_connection_reaches_the_receiver_under_its_name(
        self, settings: Settings, dns: Dns, receiver: Receiver
    ) -> None:
        dns.table["receiver.test"] = ["127.0.0.1"]
        with ledger(settings, dns, allow_local=True, backoff_scale=0.001) as (api, pump):
            # Step 1: an endpoint under a name (allowed without being resolved).
            endpoint_id = register(api, f"http://receiver.test:{receiver.port}/hooks/in"
                                   ).json()["id"]
            assert dns.asked == []

            # Step 2: two appends, two deliveries: each resolved the name once, went to
            # 127.0.0.1, and arrived with the name in its Host header.
            api.record("firms", firm(1))
            api.record("firms", firm(2))
            pump.until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 2)
            assert [a.headers["host"] for a in receiver.arrivals] == [
                f"receiver.test:{receiver.port}"] * 2
            assert dns.asked == ["receiver.test"] * 2

    def test_each_checked_address_is_tried_in_turn(self, settings: Settings, dns: Dns,
                                                   receiver: Receiver) -> None:
        # Nobody listens on 127.0.0.2 (the receiver is bound to 127.0.0.1 only).
        dns.table["receiver.test"] = ["127.0.0.2", "127.0.0.1"]
        with ledger(settings, dns, allow_local=True, backoff_scale=0.001) as (api, pump):
            endpoint_id = register(api, f"http://receiver.test:{receiver.port}/hooks/in"
                                   ).json()["id"]
            api.record("firms", firm(1))
            pump.until(lambda: len(api.deliveries(endpoint_id, "succeeded")) == 1)
            [delivery] = api.deliveries(endpoint_id)
            assert [a["status_code"] for a in delivery["history"]] == [200]
            assert len(receiver.arrivals) == 1


# 3. TLS: the certificate is checked against the name, never the address ------------------------


class Pki:
    """A certificate authority and one server certificate it signed for `name`."""

    def __init__(self, directory: Path, name: str) -> None:
        ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
            ec.SECP256R1())
        ca = self._certificate("chipledger test CA", ca_key.public_key(), ca_key, None, True)
        leaf = self._certificate(name, key.public_key(), ca_key, ca, False)
        self.ca_file, self.chain_file = directory / "ca.pem", directory / "server.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        self.chain_file.write_bytes(
            leaf.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))

    @staticmethod
    def _certificate(name: str, public: ec.EllipticCurvePublicKey,
                     signer: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
                     ca: bool) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer.subject if issuer else subject).public_key(public)
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(hours=1))
                   .not_valid_after(now + dt.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), True)
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name)]), False)
        return builder.sign(signer, hashes.SHA256())

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


class _TlsHandler(BaseHTTPRequestHandler):
    server: "TlsServer"
    protocol_version = "HTTP/1.1"  # connections are kept alive, for the client to reuse

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.server.hosts.append(self.headers.get("host", ""))
        self.server.connections.add(self.client_address)
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class TlsServer(ThreadingHTTPServer):
    """An HTTPS server on 127.0.0.1 that records the SNI and Host of what reaches it."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, pki: Pki) -> None:
        super().__init__(("127.0.0.1", 0), _TlsHandler)
        self.names: list[str | None] = []
        self.hosts: list[str] = []
        self.connections: set[tuple[str, int]] = set()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(pki.chain_file))
        context.sni_callback = lambda _socket, name, _context: self.names.append(name)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refused our certificate is part of the tests


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TlsServer, Pki]]:
    pki = Pki(tmp_path, "receiver.test")
    server = TlsServer(pki)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield server, pki
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class TestTls:
    def test_https_is_pinned_to_the_address_and_verified_against_the_name(
        self, tls: tuple[TlsServer, Pki], dns: Dns
    ) -> None:
        server, pki = tls
        dns.table.update({"receiver.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        transport = PinnedTransport(dns.resolve, allow_local=True, verify=pki.client_context())
        with httpx.Client(transport=transport, timeout=5) as client:
            # Step 1: the name's certificate verifies; SNI and Host carry the name.
            for _ in range(2):
                answer = client.post(f"https://receiver.test:{server.port}/in", content=b"{}")
                assert answer.status_code == 204
            assert (server.names, server.hosts) == (
                ["receiver.test"], [f"receiver.test:{server.port}"] * 2)
            assert len(server.connections) == 1  # the second request reused the first's

            # Step 2: another name on the same address is not vouched for by that
            # certificate: refused, although a verified connection to the address is open.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                client.post(f"https://other.test:{server.port}/in", content=b"{}")
            assert server.hosts == [f"receiver.test:{server.port}"] * 2

    def test_without_allow_local_nothing_is_sent_to_a_local_address(
        self, tls: tuple[TlsServer, Pki], dns: Dns
    ) -> None:
        server, pki = tls
        dns.table["receiver.test"] = ["127.0.0.1"]
        transport = PinnedTransport(dns.resolve, allow_local=False, verify=pki.client_context())
        with httpx.Client(transport=transport, timeout=5) as client, \
                pytest.raises(TargetRefused, match="which is loopback"):
            client.post(f"https://receiver.test:{server.port}/in", content=b"{}")
        assert (server.names, server.hosts) == ([], [])

