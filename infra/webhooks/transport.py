"""The SSRF rule of infra.webhook_targets on the async path: every request resolves its host
(in a thread: the resolver blocks), checks every address and connects to one it checked,
with the Host header, SNI and certificate check on the name. One pool per host name, for the
reason `PinnedTransport` gives."""

import asyncio
import ipaddress
import ssl

import httpx

from infra.webhook_targets import IPAddress, Resolver, pinned_request, resolve_target, target_port


class AsyncPinnedTransport(httpx.AsyncBaseTransport):
    def __init__(self, resolver: Resolver, allow_local: bool,
                 verify: ssl.SSLContext | None = None,
                 limits: httpx.Limits | None = None) -> None:
        self.resolver, self.allow_local = resolver, allow_local
        self.ssl_context = verify or httpx.create_ssl_context()
        self.limits = limits or httpx.Limits()
        self._pools: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii")
        addresses = await self._addresses(host, target_port(request.url))
        pool = self._pool(host)
        for address in addresses[:-1]:
            try:
                return await pool.handle_async_request(pinned_request(request, address))
            except httpx.ConnectError:
                continue
        return await pool.handle_async_request(pinned_request(request, addresses[-1]))

    async def _addresses(self, host: str, port: int) -> list[IPAddress]:
        try:
            ipaddress.ip_address(host)
        except ValueError:  # a name: the lookup blocks, so it runs beside the loop
            return await asyncio.to_thread(resolve_target, host, port, self.resolver,
                                           self.allow_local)
        return resolve_target(host, port, self.resolver, self.allow_local)

    def _pool(self, host: str) -> httpx.AsyncHTTPTransport:
        if host not in self._pools:  # one event loop: no lock needed
            self._pools[host] = httpx.AsyncHTTPTransport(verify=self.ssl_context,
                                                         limits=self.limits)
        return self._pools[host]

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
