"""The http attack classes of THREATS.md, several payloads each, against a real upstream.

Where a guard could fail open, the payload points at the live upstream on 127.0.0.1, so a request
that got through would be counted there: every refusal is checked against the upstream's hit
counter, not only against the error text.
"""

import logging
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError

from bulkhead.settings import ConfigError
from bulkhead_http.config import parse_config
from bulkhead_http.netguard import StaticResolver, SystemResolver
from bulkhead_http.runtime import DATA_DIR
from tests.http.conftest import api, redirecting_api, serving, text_of, tool
from tests.http.upstream import Upstream, running_upstream

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-upstream-token-0123456789"


# --- Server-side request forgery: addresses -------------------------------------------------

LOOPBACK_SPELLINGS = [
    "127.0.0.1",
    "127.1",
    "2130706433",  # decimal
    "0x7f.0.0.1",  # hex
    "0x7f000001",
    "[::1]",
    "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6
    "localhost",
]


@pytest.mark.parametrize("host", LOOPBACK_SPELLINGS)
async def test_loopback_in_any_spelling_is_refused_without_allow_private_network(
    upstream: Upstream, host: str
) -> None:
    config = api(f"http://{host}:{upstream.port}/bad", [tool("echo", "/echo")])
    async with serving(config) as (client, _):
        result = await client.call_tool("echo", {})
    assert result.is_error
    assert "Refused to connect" in text_of(result)
    assert upstream.hits["/bad/echo"] == 0


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("[fd00:ec2::254]", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("[::ffff:169.254.169.254]", "cloud metadata"),
        ("[64:ff9b::a9fe:a9fe]", "cloud metadata"),  # NAT64 form
        ("169.254.1.1", "link-local"),
        ("[fe80::1]", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
    ],
)
async def test_metadata_link_local_and_reserved_addresses_are_refused_even_with_private_allowed(
    host: str, reason: str
) -> None:
    config = api(f"http://{host}/latest", [tool("meta", "/meta-data")], allow_private_network=True)
    async with serving(config) as (client, _):
        result = await client.call_tool("meta", {})
    assert result.is_error
    assert reason in text_of(result)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (["10.0.0.7"], "private-network"),
        (["192.168.1.1"], "private-network"),
        (["100.64.0.1"], "private-network"),  # CGNAT
        (["127.0.0.1"], "loopback"),
        (["169.254.169.254"], "cloud metadata"),
        (["::ffff:10.0.0.1"], "private-network"),
        (["2002:a00:1::"], "private-network"),  # 6to4 of 10.0.0.1
        (["93.184.216.34", "127.0.0.1"], "loopback"),  # one bad address among good ones
    ],
)
async def test_a_dns_name_that_resolves_to_a_blocked_address_is_refused(
    upstream: Upstream, answer: list[str], reason: str
) -> None:
    resolver = StaticResolver({"api.example.com": answer})
    config = api(f"http://api.example.com:{upstream.port}/bad", [tool("echo", "/echo")])
    async with serving(config, resolver=resolver) as (client, _):
        result = await client.call_tool("echo", {})
    assert result.is_error
    assert "api.example.com resolves to" in text_of(result)
    assert reason in text_of(result)
    assert upstream.hits["/bad/echo"] == 0


async def test_rebinding_between_connections_is_caught_because_every_connection_is_checked(
    upstream: Upstream,
) -> None:
    # First lookup: the upstream. Second lookup (a new connection): the metadata address.
    resolver = StaticResolver({"tracker.test": [["127.0.0.1"], ["169.254.169.254"]]})
    connected: list[str] = []
    config = api(
        f"http://tracker.test:{upstream.port}/bad", [tool("echo", "/echo-close")], allow_private_network=True
    )
    async with serving(config, resolver=resolver, connected=connected) as (client, _):
        first = await client.call_tool("echo", {})
        second = await client.call_tool("echo", {})
    assert not first.is_error
    assert first.structured_content is not None
    assert first.structured_content["body"]["headers"]["host"] == f"tracker.test:{upstream.port}"
    assert second.is_error
    assert "169.254.169.254" in text_of(second)
    assert connected == ["127.0.0.1"]  # the only connection went to the address that was checked
    assert upstream.hits["/bad/echo-close"] == 1


async def test_the_connection_goes_to_the_checked_address_not_to_a_second_lookup(upstream: Upstream) -> None:
    # A resolver whose every later answer is hostile: one lookup per connection is all there is.
    resolver = StaticResolver({"tracker.test": [["127.0.0.1"], ["169.254.169.254"]]})
    connected: list[str] = []
    config = api(
        f"http://tracker.test:{upstream.port}/bad", [tool("echo", "/echo")], allow_private_network=True
    )
    async with serving(config, resolver=resolver, connected=connected) as (client, _):
        results = [await client.call_tool("echo", {}) for _ in range(5)]
    assert [r.is_error for r in results] == [False] * 5
    assert resolver.lookups == ["tracker.test"]  # one pooled connection, resolved and checked once
    assert connected == ["127.0.0.1"]


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://allowed.example.com@evil.example.com/", "user information"),
        ("http://user:pass@api.example.com/", "user information"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://127.0.0.1:6379/", "scheme"),
        ("ftp://api.example.com/", "scheme"),
        ("http://api.example.com/?key=x", "query"),
        ("http://api.example.com/\r\nHost: evil", "control characters"),
        ("http:///nohost", "host"),
        ("http://0177.0.0.1/", "not a valid URL"),  # octal spelling: refused outright
        ("http://256.1.1.1/", "not a valid URL"),
    ],
)
def test_base_urls_that_could_smuggle_a_destination_are_refused_at_start(base_url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(api(base_url, [tool("x", "/x")]), source="test.yaml", base=DATA_DIR)


# --- Redirects ----------------------------------------------------------------------------


async def test_redirects_are_not_followed_by_default(upstream: Upstream) -> None:
    tools = [tool("go", "/redirect", parameters=[{"name": "to", "in": "query", "required": True}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("go", {"to": "/bad/echo"})
    assert result.is_error
    assert "redirects are not followed" in text_of(result)
    assert upstream.hits["/bad/echo"] == 0


async def test_a_same_origin_redirect_is_followed_when_allowed_with_credentials_kept(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    config = redirecting_api(f"{upstream.base}/bad", auth={"type": "bearer", "env": "UPSTREAM_TOKEN"})
    async with serving(config) as (client, _):
        result = await client.call_tool("go", {"to": "/bad/echo?x=1"})
    assert not result.is_error
    assert upstream.hits["/bad/echo"] == 1
    assert upstream.requests[-1]["headers"]["authorization"] == f"Bearer {TOKEN}"  # type: ignore[index]
    assert TOKEN not in text_of(result)


@pytest.mark.parametrize(
    "target",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
        "http://localhost:{port}/bad/echo",  # same port, other host name: another origin
        "https://127.0.0.1:{port}/bad/echo",  # other scheme
        "http://127.0.0.1:{other}/bad/echo",  # another server on this machine
        "//evil.example.com/x",
        "/api/stats",  # same origin but outside the base path
    ],
)
async def test_redirects_to_another_origin_or_outside_the_base_path_are_refused(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    config = redirecting_api(f"{upstream.base}/bad", auth={"type": "bearer", "env": "UPSTREAM_TOKEN"})
    async with running_upstream() as other, serving(config) as (client, _):
        result = await client.call_tool("go", {"to": target.format(port=upstream.port, other=other.port)})
        assert other.hits.total() == 0  # the credential never reached the other server
    assert result.is_error
    assert "stopped there" in text_of(result)
    assert upstream.hits["/bad/echo"] == 0
    assert upstream.hits["/api/stats"] == 0


async def test_a_redirect_loop_stops_after_max_redirects(upstream: Upstream) -> None:
    config = redirecting_api(f"{upstream.base}/bad", max_redirects=3)
    loop = "/bad/redirect?to=/bad/redirect%3Fto%3D/bad/redirect"
    async with serving(config) as (client, _):
        result = await client.call_tool("go", {"to": loop})
    assert result.is_error
    assert "more than 3 times" in text_of(result) or "redirect" in text_of(result)
    assert upstream.hits["/bad/redirect"] <= 4


# --- Path, query and header injection ------------------------------------------------------

PATH_PAYLOADS = [
    "../admin",
    "..%2Fadmin",
    "%2e%2e",
    "a/../../api/stats",
    "a/b",
    "x?admin=true",
    "x#fragment",
    "x%00y",
    "\\..\\admin",
    "x;y=z",
    "@evil.example.com",
    "//evil.example.com",
    "x\r\nHost: evil",
]


@pytest.mark.parametrize("value", PATH_PAYLOADS)
async def test_a_path_parameter_stays_one_segment_of_its_operation(upstream: Upstream, value: str) -> None:
    tools = [tool("item", "/echo/{item}", parameters=[{"name": "item", "in": "path", "required": True}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("item", {"item": value})
    # Refused here, or sent as exactly one encoded segment under /bad/echo/ with no query.
    assert not result.is_error or "path parameter" in text_of(result) or "404" in text_of(result)
    for request in upstream.requests:
        raw = str(request["raw_path"])
        assert raw.startswith("/bad/echo/")
        assert "/" not in raw.removeprefix("/bad/echo/")
        assert request["query"] == ""


@pytest.mark.parametrize("value", ["", ".", ".."])
async def test_dot_segments_and_empty_path_values_are_refused(upstream: Upstream, value: str) -> None:
    tools = [tool("item", "/echo/{item}", parameters=[{"name": "item", "in": "path", "required": True}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("item", {"item": value})
    assert result.is_error
    assert upstream.hits.total() == 0


@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "a\nb", "a\rb", "a\x00b", "a\x7fb"])
async def test_header_values_with_control_characters_are_refused(upstream: Upstream, value: str) -> None:
    tools = [tool("echo", "/echo", parameters=[{"name": "X-Trace", "in": "header"}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("echo", {"X-Trace": value})
    assert result.is_error
    assert "control characters" in text_of(result)
    assert upstream.hits.total() == 0


@pytest.mark.parametrize("value", ["x&admin=true", "x&q=2", "x#frag", "x%26admin%3Dtrue", "x\nadmin=true"])
async def test_a_query_value_stays_one_value_of_its_parameter(upstream: Upstream, value: str) -> None:
    tools = [tool("echo", "/echo", parameters=[{"name": "q", "in": "query"}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("echo", {"q": value})
    assert result.structured_content is not None
    assert result.structured_content["body"]["query_items"] == [["q", value]]


async def test_the_model_cannot_set_the_credential_parameter_or_auth_headers(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", TOKEN)
    tools = [
        tool(
            "echo",
            "/echo",
            parameters=[{"name": "api_key", "in": "query"}, {"name": "q", "in": "query"}],
        )
    ]
    config = api(
        f"{upstream.base}/bad",
        tools,
        allow_private_network=True,
        auth={"type": "api_key", "in": "query", "name": "api_key", "env": "UPSTREAM_KEY"},
    )
    async with serving(config) as (client, _):
        schema = (await client.list_tools()).tools[0].input_schema
        result = await client.call_tool("echo", {"api_key": "attacker"})
    assert "api_key" not in schema["properties"]
    assert result.is_error
    assert upstream.hits.total() == 0
    with pytest.raises(ConfigError, match="set by the server"):
        parse_config(
            api(
                "http://x.example", [tool("e", "/e", parameters=[{"name": "Authorization", "in": "header"}])]
            ),
            source="t",
            base=DATA_DIR,
        )


# --- Credentials ----------------------------------------------------------------------------

AUTHS = [
    ({"type": "bearer", "env": "UPSTREAM_SECRET"}, "authorization", f"Bearer {TOKEN}"),
    ({"type": "api_key", "in": "header", "name": "X-API-Key", "env": "UPSTREAM_SECRET"}, "x-api-key", TOKEN),
    ({"type": "basic", "username": "svc", "env": "UPSTREAM_SECRET"}, "authorization", None),
    ({"type": "api_key", "in": "query", "name": "key", "env": "UPSTREAM_SECRET"}, None, None),
]


@pytest.mark.parametrize(("auth", "header", "value"), AUTHS)
async def test_credentials_reach_the_api_but_never_the_model_or_the_logs(
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    auth: dict[str, Any],
    header: str | None,
    value: str | None,
) -> None:
    monkeypatch.setenv("UPSTREAM_SECRET", TOKEN)
    caplog.set_level(logging.DEBUG)
    tools = [tool("echo", "/echo"), tool("boom", "/error500"), tool("missing", "/notfound")]
    config = api(f"{upstream.base}/bad", tools, allow_private_network=True, auth=auth)
    async with serving(config) as (client, _):
        echoed = await client.call_tool("echo", {})
        failed = await client.call_tool("boom", {})
        missing = await client.call_tool("missing", {})
    request = upstream.requests[0]
    headers: dict[str, str] = request["headers"]  # type: ignore[assignment]
    if header is not None:
        assert header in headers
        if value is not None:
            assert headers[header] == value
    else:
        assert f"key={TOKEN}" in str(request["query"])
    for result in (echoed, failed, missing):
        assert TOKEN not in str(result.model_dump())
    assert "[redacted]" in str(echoed.model_dump())
    # The test upstream's own access log (not ours) is left out.
    ours = [record.getMessage() for record in caplog.records if not record.name.startswith("uvicorn")]
    assert ours
    assert not [line for line in ours if TOKEN in line]


async def test_an_openapi_document_elsewhere_is_fetched_without_the_credential(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UPSTREAM_SECRET", TOKEN)
    async with running_upstream() as docs:
        # The demo tracker's own document is not served over HTTP; any JSON body proves the fetch
        # happened, and the refusal proves it was parsed as a document.
        config = {
            "apis": [
                {
                    "name": "test",
                    "base_url": f"{upstream.base}/api",
                    "allow_private_network": True,
                    "auth": {"type": "bearer", "env": "UPSTREAM_SECRET"},
                    "openapi": {"source": f"{docs.base}/bad/echo", "include": [{"tag": "tickets"}]},
                }
            ]
        }
        with pytest.raises(ConfigError, match="OpenAPI version"):
            async with serving(config):
                pass
        assert "authorization" not in docs.requests[0]["headers"]  # type: ignore[operator]


async def test_unknown_tools_and_arguments_are_refused_before_any_request(upstream: Upstream) -> None:
    tools = [tool("echo", "/echo")]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        with pytest.raises(MCPError):
            await client.call_tool("fetch", {"url": "http://169.254.169.254/"})
        extra = await client.call_tool("echo", {"url": "http://169.254.169.254/"})
    assert extra.is_error
    assert upstream.hits.total() == 0


async def test_the_system_resolver_checks_literals_without_a_lookup() -> None:
    assert [str(a) for a in await SystemResolver().resolve("[::1]", 80)] == ["::1"]
    assert [str(a) for a in await SystemResolver().resolve("2130706433", 80)] == ["127.0.0.1"]
