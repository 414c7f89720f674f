"""Adversarial review: http attacks the first test round did not cover, against a real upstream."""

import pytest

from tests.http.conftest import api, redirecting_api, serving, text_of, tool
from tests.http.upstream import Upstream

pytestmark = pytest.mark.anyio

TOKEN = "s3cr3t-upstream-token-0123456789"


@pytest.mark.parametrize(
    "target",
    [
        "/bad/%2e%2e/api/stats",  # reads as /bad/../api/stats once decoded
        "/bad/%2E%2E/%2E%2E/api/stats",
        "/bad/..%2fapi/stats",  # encoded slash
        "/bad/%2e%2e%2fapi%2fstats",
        "/bad/..%5capi/stats",  # encoded backslash (IIS, some proxies)
        "/bad/.%2e/api/stats",
        "/bad/%2e/echo",
    ],
)
async def test_a_redirect_cannot_leave_the_base_path_through_encoded_dot_segments(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    config = redirecting_api(f"{upstream.base}/bad", auth={"type": "bearer", "env": "UPSTREAM_TOKEN"})
    async with serving(config) as (client, _):
        result = await client.call_tool("go", {"to": target})
    assert result.is_error
    assert "stopped there" in text_of(result)
    assert TOKEN not in text_of(result)
    # Only the redirecting request reached the upstream: the credential never went to the target.
    assert [request["path"] for request in upstream.requests] == ["/bad/redirect"]


@pytest.mark.parametrize("value", ["..;", "..;x=1", ".;", "..;jsessionid=abc", "%2e%2e;"])
async def test_a_path_parameter_cannot_become_a_dot_segment_through_a_path_parameter_suffix(
    upstream: Upstream, value: str
) -> None:
    # Servlet containers (Tomcat, Jetty behind a proxy) cut each segment at `;`: a raw `..;x`
    # segment is `..` to them, one level above the operation.
    tools = [tool("item", "/echo/{item}", parameters=[{"name": "item", "in": "path", "required": True}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("item", {"item": value})
    assert not result.is_error or "path parameter" in text_of(result)
    for request in upstream.requests:
        segment = str(request["raw_path"]).removeprefix("/bad/echo/")
        assert segment.split(";", 1)[0] not in ("", ".", "..")


def _reflecting(upstream: Upstream, **limits: int) -> dict[str, object]:
    parameters = [{"name": name, "in": "query", "schema": {"type": "integer"}} for name in ("pad", "status")]
    return api(
        f"{upstream.base}/bad",
        [tool("reflect", "/reflect", parameters=parameters)],
        allow_private_network=True,
        auth={"type": "bearer", "env": "UPSTREAM_TOKEN"},
        limits=limits,
    )


@pytest.mark.parametrize(
    ("status", "limits", "cut_at"),
    [
        (401, {"max_error_body_chars": 200}, 200),  # an error body cut for the model
        (200, {"max_text_chars": 200}, 200),  # a text answer cut for the model
        (200, {"max_response_bytes": 1024}, 1024),  # a body cut at the byte cap while streaming
    ],
    ids=["error-body", "text", "byte-cap"],
)
@pytest.mark.parametrize("inside", [4, 12, len(TOKEN) - 1])
async def test_a_cut_through_a_reflected_credential_leaks_no_part_of_it(
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
    limits: dict[str, int],
    cut_at: int,
    inside: int,
) -> None:
    monkeypatch.setenv("UPSTREAM_TOKEN", TOKEN)
    # The model picks the padding so the cut falls `inside` characters into the token.
    pad = cut_at - len("rejected: Bearer ") - inside
    async with serving(_reflecting(upstream, **limits)) as (client, _):
        result = await client.call_tool("reflect", {"pad": pad, "status": status})
    assert upstream.hits["/bad/reflect"] == 1
    text = text_of(result)
    assert "rejected: Bearer " in text
    assert TOKEN[:4] not in text


@pytest.mark.parametrize("value", ["caf\u00e9", "\u2028x", "\u0085x", "\u65e5\u672c", "a\u200bb"])
async def test_a_header_value_outside_ascii_is_the_model_s_error_not_an_internal_one(
    upstream: Upstream, value: str
) -> None:
    tools = [tool("echo", "/echo", parameters=[{"name": "X-Trace", "in": "header"}])]
    async with serving(api(f"{upstream.base}/bad", tools, allow_private_network=True)) as (client, _):
        result = await client.call_tool("echo", {"X-Trace": value})
        after = await client.call_tool("echo", {"X-Trace": "fine"})
    assert result.is_error
    assert "must be ASCII" in text_of(result)
    assert "Internal error" not in text_of(result)
    assert not after.is_error
    assert upstream.hits["/bad/echo"] == 1  # only the second call went out


@pytest.mark.parametrize("where", ["path", "query", "header", "body"])
@pytest.mark.parametrize("value", ["\ud800", "a\udfffb"])
async def test_a_lone_surrogate_in_any_argument_is_the_model_s_error_not_an_internal_one(
    upstream: Upstream, where: str, value: str
) -> None:
    parameters = [
        {"name": "item", "in": "path", "required": True},
        {"name": "q", "in": "query"},
        {"name": "X-Trace", "in": "header"},
    ]
    body = {"type": "object", "properties": {"note": {"type": "string"}}}
    tools = [tool("item", "/echo/{item}", method="POST", parameters=parameters, body=body)]
    arguments: dict[str, object] = {"item": "x"}
    arguments.update(
        {
            "path": {"item": value},
            "query": {"q": value},
            "header": {"X-Trace": value},
            "body": {"body": {"note": value}},
        }[where]
    )
    config = api(f"{upstream.base}/bad", tools, allow_private_network=True, allow_writes=True)
    async with serving(config) as (client, _):
        result = await client.call_tool("item", arguments)
    assert result.is_error
    assert "lone surrogate" in text_of(result)
    assert upstream.hits.total() == 0
