"""The address guard's verdicts, address by address, and the resolvers it is fed by."""

import ipaddress

import anyio
import pytest

from bulkhead_http.netguard import IPAddress, StaticResolver, SystemResolver, blocked_reason
from tests.http.conftest import api, serving, text_of, tool

pytestmark = pytest.mark.anyio

ALWAYS_BLOCKED = [
    "169.254.169.254",
    "169.254.170.2",
    "100.100.100.200",
    "fd00:ec2::254",
    "::ffff:169.254.169.254",
    "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::",
    "169.254.0.1",
    "fe80::1",
    "0.0.0.0",
    "::",
    "224.0.0.1",
    "ff02::1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.51.100.7",
    "2001:db8::1",
    "0.1.2.3",
]
PRIVATE = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.0.1",
    "100.64.0.1",
    "fc00::1",
    "::ffff:10.0.0.1",
    "2002:c0a8:101::",
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"]


@pytest.mark.parametrize("address", ALWAYS_BLOCKED)
def test_metadata_link_local_and_reserved_are_blocked_even_with_private_allowed(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert blocked_reason(ip) is not None
    assert blocked_reason(ip, allow_private=True) is not None


@pytest.mark.parametrize("address", PRIVATE)
def test_loopback_and_private_ranges_need_allow_private(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert blocked_reason(ip) is not None
    assert blocked_reason(ip, allow_private=True) is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


async def test_a_static_resolver_serves_its_answers_in_rounds_then_repeats_the_last() -> None:
    resolver = StaticResolver({"a.test": [["127.0.0.1"], ["10.0.0.1"]], "b.test": ["8.8.8.8", "::1"]})
    first = await resolver.resolve("a.test", 80)
    second = await resolver.resolve("a.test", 80)
    third = await resolver.resolve("a.test", 80)
    assert [str(a) for a in first + second + third] == ["127.0.0.1", "10.0.0.1", "10.0.0.1"]
    assert [str(a) for a in await resolver.resolve("b.test", 80)] == ["8.8.8.8", "::1"]
    assert await resolver.resolve("unknown.test", 80) == []


async def test_the_system_resolver_resolves_numeric_spellings_like_the_socket_layer_would() -> None:
    resolver = SystemResolver()
    for spelling in ("2130706433", "0x7f.0.0.1", "127.1", "017700000001"):
        assert [str(a) for a in await resolver.resolve(spelling, 80)] == ["127.0.0.1"]


class _Stalled:
    """A resolver that never answers (a DNS server that has gone away)."""

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        await anyio.Event().wait()
        return []


async def test_a_resolver_that_never_answers_is_bounded_by_the_connect_timeout() -> None:
    config = api("http://stalled.test/x", [tool("t", "/t")], limits={"connect_timeout": 0.2, "retries": 0})
    async with serving(config, resolver=_Stalled()) as (client, _):
        result = await client.call_tool("t", {})
    assert result.is_error
    assert "timed out" in text_of(result)
