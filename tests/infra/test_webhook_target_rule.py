"""A webhook goes only to a globally routable address: every address class that is not (and
every IPv6 form that embeds one) is refused with a reason naming it; global addresses pass.
Resolution checks every address a name gives, and the pinned request keeps the name."""

from ipaddress import ip_address

import httpx
import pytest

from infra.webhook_targets import (
    TargetRefused,
    pinned_request,
    refusal,
    resolve_target,
    target_port,
)
from tests.support.dns import Dns

REFUSED = [
    # IPv4
    ("0.0.0.0", "this network"),
    ("10.1.2.3", "private"),
    ("100.64.0.1", "shared address space (RFC 6598)"),
    ("100.100.100.200", "shared address space (RFC 6598)"),  # a cloud metadata service
    ("100.127.255.254", "shared address space (RFC 6598)"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.169.254", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.0.9", "IETF protocol assignments"),  # global anycast, never a receiver
    ("192.0.2.1", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("192.168.1.20", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("100::1", "discard-only"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("5f00::1", "SRv6"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("4000::1", "outside IPv6 global unicast"),
    ("2001:2::1", "IETF protocol assignments"),
    # IPv6 forms of IPv4 addresses: judged by the IPv4 address they reach
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, private"),
    ("::ffff:100.100.100.200", "IPv4-mapped form of 100.100.100.200, shared address space"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254, link-local"),
    ("2002:7f00:1::", "6to4 form of 127.0.0.1, loopback"),
    ("2002:a00:1::1", "6to4 form of 10.0.0.1, private"),
    ("2002:6464:64c8::", "6to4 form of 100.100.100.200, shared address space"),
    ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1, loopback"),
    ("64:ff9b::a9fe:a9fe", "NAT64 form of 169.254.169.254, link-local"),
    ("64:ff9b::6440:1", "NAT64 form of 100.64.0.1, shared address space"),
    # ...or refused whole, where the prefix never holds a receiver
    ("2001::1", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:0:808:808:8000:63bf:f7f7:f7f7", "Teredo"),  # a global server and client
    ("64:ff9b:1::7f00:1", "local-use NAT64"),
    ("64:ff9b:1::808:808", "local-use NAT64"),
    ("::127.0.0.1", "IPv4-compatible"),
    ("::8.8.8.8", "IPv4-compatible"),
    ("::ffff:0:7f00:1", "-translated"),
]

GLOBAL = ["8.8.8.8", "1.1.1.1", "93.184.215.14", "100.63.255.255", "100.128.0.1",
          "172.32.0.1", "192.0.1.1", "198.20.0.1", "223.255.255.254",
          "2606:4700:4700::1111", "2a00:1450:4001:80b::200e", "2001:4860:4860::8888",
          "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize(("address", "named"), REFUSED)
def test_every_address_that_is_not_globally_routable_is_refused_with_its_class(
    address: str, named: str
) -> None:
    reason = refusal(ip_address(address))
    assert reason is not None
    assert named in reason


@pytest.mark.parametrize("address", GLOBAL)
def test_globally_routable_addresses_and_their_ipv6_forms_are_accepted(address: str) -> None:
    assert refusal(ip_address(address)) is None


def test_a_name_is_refused_when_any_of_its_addresses_is() -> None:
    dns = Dns({"hooks.example": ["93.184.215.14", "100.100.100.200"]})
    with pytest.raises(TargetRefused) as refused:
        resolve_target("hooks.example", 443, dns.resolve, allow_local=False)
    assert refused.value.kind == "url_local"
    assert "hooks.example resolves to 100.100.100.200" in str(refused.value)
    assert "CHIPLEDGER_WEBHOOK_ALLOW_LOCAL=1" in str(refused.value)


def test_a_name_whose_addresses_are_all_global_resolves_to_all_of_them() -> None:
    dns = Dns({"hooks.example": ["93.184.215.14", "2606:4700:4700::1111"]})
    assert resolve_target("hooks.example", 443, dns.resolve, allow_local=False) == [
        ip_address("93.184.215.14"), ip_address("2606:4700:4700::1111")]


def test_allow_local_accepts_local_addresses_but_still_resolves() -> None:
    dns = Dns({"receiver.test": ["127.0.0.1"]})
    assert resolve_target("receiver.test", 80, dns.resolve, allow_local=True) == [
        ip_address("127.0.0.1")]
    assert dns.asked == ["receiver.test"]


@pytest.mark.parametrize(("literal", "said"), [
    ("::ffff:127.0.0.1", "::ffff:127.0.0.1 is the IPv4-mapped form of 127.0.0.1"),
    ("0.0.0.0", "0.0.0.0 is 'this network'"),
    ("::", ":: is unspecified"),
])
def test_a_literal_address_is_judged_without_asking_the_resolver(literal: str,
                                                                 said: str) -> None:
    dns = Dns({})
    with pytest.raises(TargetRefused) as refused:
        resolve_target(literal, 80, dns.resolve, allow_local=False)
    assert str(refused.value).startswith(said)
    assert dns.asked == []


def test_a_name_that_does_not_resolve_is_refused_as_unresolvable() -> None:
    with pytest.raises(TargetRefused) as refused:
        resolve_target("nowhere.example", 443, Dns({}).resolve, allow_local=True)
    assert refused.value.kind == "url_unresolvable"
    with pytest.raises(TargetRefused):
        resolve_target("empty.example", 443, Dns({"empty.example": []}).resolve, True)


@pytest.mark.parametrize(("url", "port"), [("http://a.example/", 80), ("https://a.example/", 443),
                                           ("https://a.example:8443/", 8443)])
def test_a_target_port_is_the_urls_or_its_schemes(url: str, port: int) -> None:
    assert target_port(httpx.URL(url)) == port


@pytest.mark.parametrize("url", ["https://example.com:99999/x", "http://example.com:0/"])
def test_a_port_outside_1_to_65535_is_refused(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        target_port(httpx.URL(url))
    assert refused.value.kind == "url_port"


def test_a_pinned_request_goes_to_the_address_and_keeps_the_name_for_host_and_tls() -> None:
    request = httpx.Request("POST", "https://hooks.example:8443/in?x=1", content=b"{}",
                            extensions={"timeout": {"connect": 1.0}})
    pinned = pinned_request(request, ip_address("2606:4700:4700::1111"))
    assert str(pinned.url) == "https://[2606:4700:4700::1111]:8443/in?x=1"
    assert pinned.headers["host"] == "hooks.example:8443"
    assert pinned.extensions == {"timeout": {"connect": 1.0}, "sni_hostname": "hooks.example"}
    assert pinned.read() == b"{}"


def test_a_pinned_plain_http_request_needs_no_sni() -> None:
    pinned = pinned_request(httpx.Request("POST", "http://hooks.example/in"),
                            ip_address("93.184.215.14"))
    assert str(pinned.url) == "http://93.184.215.14/in"
    assert pinned.headers["host"] == "hooks.example"
    assert "sni_hostname" not in pinned.extensions
