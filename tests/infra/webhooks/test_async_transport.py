"""The SSRF rule on the dispatcher's async path (infra/webhooks/transport.py), as
tests/api/test_webhook_targets.py checks it on the synchronous one: pinned to a checked
address, verified against the name, refused when the name resolves somewhere local."""

import asyncio

import httpx
import pytest

from infra.webhook_targets import TargetRefused
from infra.webhooks.transport import AsyncPinnedTransport
from tests.api.test_webhook_targets import Pki, TlsServer
from tests.api.test_webhook_targets import tls as tls
from tests.support.dns import Dns


def post_all(transport: AsyncPinnedTransport, urls: list[str]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=transport, timeout=5) as client:
            return [await client.post(url, content=b"{}") for url in urls]
    return asyncio.run(run())


@pytest.fixture
def dns() -> Dns:
    return Dns()


def test_https_is_pinned_to_the_address_and_verified_against_the_name(
    tls: tuple[TlsServer, Pki], dns: Dns
) -> None:
    server, pki = tls
    dns.table.update({"receiver.test": ["127.0.0.2", "127.0.0.1"], "other.test": ["127.0.0.1"]})
    transport = AsyncPinnedTransport(dns.resolve, allow_local=True, verify=pki.client_context())
    url = f"https://receiver.test:{server.port}/in"
    # Nobody listens on 127.0.0.2: the next checked address is tried, under the name.
    assert [r.status_code for r in post_all(transport, [url, url])] == [204, 204]
    assert (server.names, server.hosts) == (["receiver.test"], [f"receiver.test:{server.port}"] * 2)
    assert dns.asked == ["receiver.test"] * 2  # resolved at every request
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        post_all(transport, [f"https://other.test:{server.port}/in"])


def test_a_name_that_resolves_to_loopback_is_refused_before_connecting(
    tls: tuple[TlsServer, Pki], dns: Dns
) -> None:
    server, pki = tls
    dns.table["receiver.test"] = ["93.184.215.14", "127.0.0.1"]
    transport = AsyncPinnedTransport(dns.resolve, allow_local=False, verify=pki.client_context())
    with pytest.raises(TargetRefused, match="which is loopback"):
        post_all(transport, [f"https://receiver.test:{server.port}/in"])
    with pytest.raises(TargetRefused, match="loopback"):
        post_all(transport, [f"http://127.0.0.1:{server.port}/in"])
    assert (server.names, server.hosts) == ([], [])

