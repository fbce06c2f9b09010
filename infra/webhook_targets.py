"""Where a webhook may be sent: only to globally routable addresses, checked when an endpoint
is registered and again at every delivery, on the very address the connection then uses.

At each delivery the URL's host is resolved once, every address it resolves to must pass the
rule, and the request goes to one of those addresses: the URL is rewritten to the IP while
the Host header, TLS SNI and the certificate's check stay on the name. No second lookup
happens between the check and the connect, so a name that starts resolving to an internal
address (DNS rebinding) is refused rather than delivered to.

The rule, the resolution and the pinned request are small functions so that an async
dispatcher can reuse them; `PinnedTransport` composes them for a synchronous httpx client.
"""

import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

import httpx

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], list[IPAddress]]

# The IANA special-purpose registries' blocks that are not globally reachable, plus the ones
# that are but never hold a receiver (multicast, anycast relays, protocol assignments). Our
# own table: the one behind `is_global` differs between Python versions (3.11 calls ff02::1
# global), and `is_global` stays a second net behind it. The more specific block first.
_NOT_GLOBAL_V4 = tuple((IPv4Network(n), why) for n, why in (
    ("0.0.0.0/8", "'this network'"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (RFC 6598), where cloud metadata services live"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local, where cloud metadata services live"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved or broadcast"),
))
_NOT_GLOBAL_V6 = tuple((IPv6Network(n), why) for n, why in (
    ("::1/128", "loopback"),
    ("::/128", "unspecified"),
    ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
    # IPv4-compatible (::a.b.c.d) and IPv4-translated forms: deprecated, never routed.
    ("::/8", "reserved (IPv4-compatible and -translated forms included)"),
    ("100::/64", "discard-only"),
    ("2001::/32", "Teredo (a tunnel client's address)"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "SRv6 segment identifiers"),
    ("fc00::/7", "unique local (private)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
))
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")
_NAT64 = IPv6Network("64:ff9b::/96")


class TargetRefused(httpx.TransportError):
    """The receiver's host does not resolve, or resolves to an address nothing may be sent
    to. An httpx transport error, so that a delivery records it as a failed attempt."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # url_unresolvable, url_local or url_port


def embedded_ipv4(address: IPv6Address) -> tuple[str, IPv4Address] | None:
    """The IPv4 address an IPv6 form routes to, judged in its place: IPv4-mapped (the socket
    connects over IPv4), NAT64 (a gateway translates to it) and 6to4 (relays tunnel to it)."""
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address in _NAT64:
        return "NAT64", IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    return None


def refusal(address: IPAddress) -> str | None:
    """Why nothing may be sent to `address`, or None when it is globally routable."""
    if isinstance(address, IPv6Address):
        embedded = embedded_ipv4(address)
        if embedded is not None:
            form, inner = embedded
            reason = refusal(inner)
            return f"the {form} form of {inner}, {reason}" if reason else None
        if address not in _GLOBAL_UNICAST_V6:
            return _named(address) or "outside IPv6 global unicast space (2000::/3)"
    return _named(address) or (None if address.is_global else "not globally routable")


def _named(address: IPAddress) -> str | None:
    blocks = _NOT_GLOBAL_V4 if isinstance(address, IPv4Address) else _NOT_GLOBAL_V6
    return next((why for network, why in blocks if address in network), None)


def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver answers for `host`, in its order, each once."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def resolve_target(host: str, port: int, resolver: Resolver, allow_local: bool
                   ) -> list[IPAddress]:
    """The addresses a request to `host` may connect to: every one it resolves to, once each
    has passed the rule (unless local receivers are allowed)."""
    literal = _literal(host)
    addresses = [literal] if literal is not None else _resolve(host, port, resolver)
    if not allow_local:
        for address in addresses:
            _refuse_unless_global(host if literal is not None else
                                  f"{host} resolves to {address}, which", address)
    return addresses


def _refuse_unless_global(said: str, address: IPAddress) -> None:
    reason = refusal(address)
    if reason:
        raise TargetRefused(f"{said} is {reason}: not a globally routable address (set "
                            "CHIPLEDGER_WEBHOOK_ALLOW_LOCAL=1 to allow local receivers)",
                            "url_local")


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _resolve(host: str, port: int, resolver: Resolver) -> list[IPAddress]:
    try:
        addresses = resolver(host, port)
    except (OSError, ValueError) as exc:  # UnicodeError (IDNA) is a ValueError
        raise TargetRefused(f"{host} does not resolve ({exc})", "url_unresolvable") from None
    if not addresses:
        raise TargetRefused(f"{host} does not resolve", "url_unresolvable")
    return addresses


def target_port(url: httpx.URL) -> int:
    """The URL's port, or its scheme's; refused outside 1-65535 (httpx parses 99999)."""
    port = url.port if url.port is not None else (443 if url.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise TargetRefused(f"port {port} is not between 1 and 65535", "url_port")
    return port


def pinned_request(request: httpx.Request, address: IPAddress) -> httpx.Request:
    """`request`, sent to `address`: the Host header, TLS SNI and the certificate's check
    stay on the name the URL gave."""
    extensions = dict(request.extensions)
    if request.url.scheme == "https":
        extensions["sni_hostname"] = request.url.raw_host.decode("ascii")
    return httpx.Request(request.method, request.url.copy_with(host=str(address)),
                         headers=request.headers, stream=request.stream,
                         extensions=extensions)


class PinnedTransport(httpx.BaseTransport):
    """Resolves each request's host itself, refuses what the rule refuses and connects to
    an address it checked, trying them in the resolver's order. One connection pool per host
    name: the pools are keyed by address, and a TLS connection verified for one name must
    never carry a request for another name that shares its address."""

    def __init__(self, resolver: Resolver, allow_local: bool,
                 verify: ssl.SSLContext | None = None) -> None:
        self.resolver, self.allow_local = resolver, allow_local
        self.ssl_context = verify or httpx.create_ssl_context()
        self._pools: dict[str, httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.raw_host.decode("ascii")
        addresses = resolve_target(host, target_port(request.url), self.resolver,
                                   self.allow_local)
        pool = self._pool(host)
        for address in addresses[:-1]:
            try:
                return pool.handle_request(pinned_request(request, address))
            except httpx.ConnectError:
                continue
        return pool.handle_request(pinned_request(request, addresses[-1]))

    def _pool(self, host: str) -> httpx.HTTPTransport:
        with self._lock:
            if host not in self._pools:
                self._pools[host] = httpx.HTTPTransport(verify=self.ssl_context)
            return self._pools[host]

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()
