"""HTTPS upstreams: the connection is pinned to the checked address while TLS verifies the host name."""

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
import trustme

from bulkhead_http.netguard import StaticResolver
from tests.http.conftest import api, serving, text_of, tool
from tests.http.upstream import Upstream, running_upstream

pytestmark = pytest.mark.anyio


@pytest.fixture
async def tls_upstream(tmp_path: Path) -> AsyncGenerator[tuple[Upstream, Path]]:
    ca = trustme.CA()
    cert = ca.issue_cert("tracker.test")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    async with running_upstream((str(cert_file), str(key_file))) as upstream:
        yield upstream, ca_file


RESOLVER = {"tracker.test": ["127.0.0.1"], "impostor.test": ["127.0.0.1"]}


async def test_https_to_a_pinned_address_verifies_the_certificate_for_the_host_name(
    tls_upstream: tuple[Upstream, Path],
) -> None:
    upstream, ca_file = tls_upstream
    connected: list[str] = []
    config = api(
        f"https://tracker.test:{upstream.port}/bad",
        [tool("echo", "/echo")],
        allow_private_network=True,
        ca_file=str(ca_file),
    )
    async with serving(config, resolver=StaticResolver(RESOLVER), connected=connected) as (client, _):
        result = await client.call_tool("echo", {})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    assert result.structured_content["body"]["headers"]["host"] == f"tracker.test:{upstream.port}"
    assert connected == ["127.0.0.1"]


async def test_a_certificate_for_another_name_is_refused(tls_upstream: tuple[Upstream, Path]) -> None:
    upstream, ca_file = tls_upstream
    config = api(
        f"https://impostor.test:{upstream.port}/bad",
        [tool("echo", "/echo")],
        allow_private_network=True,
        ca_file=str(ca_file),
        limits={"retries": 0},
    )
    async with serving(config, resolver=StaticResolver(RESOLVER)) as (client, _):
        result = await client.call_tool("echo", {})
    assert result.is_error
    assert "Could not reach" in text_of(result)
    assert upstream.hits.total() == 0


async def test_a_certificate_from_an_untrusted_ca_is_refused(tls_upstream: tuple[Upstream, Path]) -> None:
    upstream, _ = tls_upstream
    config = api(
        f"https://tracker.test:{upstream.port}/bad",
        [tool("echo", "/echo")],
        allow_private_network=True,
        limits={"retries": 0},
    )
    async with serving(config, resolver=StaticResolver(RESOLVER)) as (client, _):
        result = await client.call_tool("echo", {})
    assert result.is_error
    assert "certificate" in text_of(result).lower() or "Could not reach" in text_of(result)
    assert upstream.hits.total() == 0
