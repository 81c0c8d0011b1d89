"""Who is asking (server.clientaddr): the peer, or the first untrusted X-Forwarded-For hop from
the right; buckets per address, per /64 for IPv6; answers kept for addresses seen again."""

from __future__ import annotations

import ipaddress

from server.clientaddr import _parse_short, bucket, client_address, exempt

PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def scope(peer: str, *hops: str) -> dict[str, object]:
    headers = [(b"x-forwarded-for", ", ".join(hops).encode())] if hops else []
    return {"client": (peer, 40000), "headers": headers}


def test_the_first_untrusted_hop_from_the_right_is_the_client() -> None:
    s = scope("10.0.0.1", "203.0.113.9", "198.51.100.7", "10.1.1.1")
    assert client_address(s, PROXIES) == ipaddress.ip_address("198.51.100.7")
    assert client_address(s, ()) == ipaddress.ip_address("10.0.0.1")  # no proxy trusted


def test_a_hop_that_is_not_an_address_stops_the_walk_at_the_last_trusted_proxy() -> None:
    s = scope("10.0.0.1", "203.0.113.9", "not-an-address", "10.1.1.1")
    assert client_address(s, PROXIES) == ipaddress.ip_address("10.1.1.1")


def test_an_overlong_hop_is_not_an_address_and_is_not_kept() -> None:
    before = _parse_short.cache_info().currsize
    s = scope("10.0.0.1", "1" * 10_000, "10.1.1.1")
    assert client_address(s, PROXIES) == ipaddress.ip_address("10.1.1.1")
    padded = scope("10.0.0.1", " " * 500 + "203.0.113.4")  # only the address counts, not spaces
    assert client_address(padded, PROXIES) == ipaddress.ip_address("203.0.113.4")
    assert _parse_short.cache_info().currsize <= before + 1  # the padded one, stripped


def test_ports_brackets_and_mapped_addresses() -> None:
    assert client_address(scope("10.0.0.1", "[2001:db8::5]:443"), PROXIES) == (
        ipaddress.ip_address("2001:db8::5")
    )
    assert client_address(scope("10.0.0.1", "203.0.113.5:8080"), PROXIES) == (
        ipaddress.ip_address("203.0.113.5")
    )
    assert client_address(scope("::ffff:192.0.2.1"), ()) == ipaddress.ip_address("192.0.2.1")


def test_buckets_and_exemptions() -> None:
    v6 = ipaddress.ip_address("2001:db8:1:2:ffff::9")
    assert bucket(v6) == "2001:db8:1:2::/64"
    assert bucket(ipaddress.ip_address("2001:db8:1:2::77")) == bucket(v6)  # same /64, again
    assert bucket(ipaddress.ip_address("192.0.2.1")) == "192.0.2.1"
    assert exempt(ipaddress.ip_address("10.9.9.9"), PROXIES)
    assert not exempt(ipaddress.ip_address("192.0.2.1"), PROXIES)
