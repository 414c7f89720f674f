"""Upstream misbehaviour: slow, endless, huge, wrong content types, invalid JSON, 429, 5xx.

Each ends as a clear result (an error where the answer is unusable), within the API's limits, and
the server keeps serving.
"""

from typing import Any

import anyio
import pytest

from tests.http.conftest import api, serving, text_of, tool
from tests.http.upstream import Upstream

pytestmark = pytest.mark.anyio

OBJECT = {"type": "object"}


def config(upstream: Upstream, tools: list[dict[str, Any]], **limits: Any) -> dict[str, Any]:
    base = {
        "read_timeout": 0.5,
        "total_timeout": 5,
        "max_response_bytes": 100_000,
        "max_text_chars": 1_000,
        "backoff_seconds": 0,
    }
    return api(f"{upstream.base}/bad", tools, allow_private_network=True, limits={**base, **limits})


async def test_a_slow_upstream_is_a_timeout_error_and_the_server_keeps_serving(upstream: Upstream) -> None:
    tools = [tool("slow", "/slow"), tool("echo", "/echo")]
    async with serving(config(upstream, tools, retries=1)) as (client, _):
        slow = await client.call_tool("slow", {})
        after = await client.call_tool("echo", {})
    assert slow.is_error
    assert "timed out" in text_of(slow)
    assert upstream.hits["/bad/slow"] == 2  # one retry for an idempotent GET
    assert not after.is_error


async def test_the_total_timeout_bounds_a_call_with_retries(upstream: Upstream) -> None:
    tools = [tool("slow", "/slow")]
    async with serving(config(upstream, tools, read_timeout=5, total_timeout=0.5, retries=5)) as (client, _):
        result = await client.call_tool("slow", {})
    assert result.is_error
    assert "within 0.5 s (total timeout)" in text_of(result)


@pytest.mark.parametrize("path", ["/endless", "/huge"])
async def test_a_body_over_the_byte_cap_is_cut_while_streaming_and_reported(
    upstream: Upstream, path: str
) -> None:
    async with serving(config(upstream, [tool("big", path)])) as (client, _):
        result = await client.call_tool("big", {})
    assert result.is_error
    assert "larger than 100000 bytes" in text_of(result)


async def test_long_text_is_cut_with_a_marker(upstream: Upstream) -> None:
    async with serving(config(upstream, [tool("text", "/bigtext")])) as (client, _):
        result = await client.call_tool("text", {})
    assert not result.is_error
    text = text_of(result)
    assert text.startswith("z" * 1000)
    assert "[... text cut here: 99000 more characters not shown]" in text
    assert result.structured_content is None


async def test_html_where_json_is_promised_is_an_error_and_text_otherwise(upstream: Upstream) -> None:
    tools = [tool("promised", "/html", output_schema=OBJECT), tool("plain", "/html")]
    async with serving(config(upstream, tools)) as (client, _):
        promised = await client.call_tool("promised", {})
        plain = await client.call_tool("plain", {})
    assert promised.is_error
    assert "text/html where this operation promises JSON" in text_of(promised)
    assert "Login required" in text_of(promised)
    assert not plain.is_error
    assert "Login required" in text_of(plain)


async def test_invalid_json_is_an_error_with_a_trimmed_body(upstream: Upstream) -> None:
    async with serving(config(upstream, [tool("bad", "/badjson")])) as (client, _):
        result = await client.call_tool("bad", {})
    assert result.is_error
    assert "invalid JSON" in text_of(result)
    assert '{"truncated": [1, 2' in text_of(result)


async def test_a_binary_body_is_described_not_returned(upstream: Upstream) -> None:
    async with serving(config(upstream, [tool("png", "/binary")])) as (client, _):
        result = await client.call_tool("png", {})
    assert not result.is_error
    assert "image/png (1032 bytes), which is not text" in text_of(result)


async def test_a_5xx_is_an_error_with_status_reason_and_a_trimmed_body(upstream: Upstream) -> None:
    async with serving(config(upstream, [tool("boom", "/error500")], max_error_body_chars=200)) as (
        client,
        _,
    ):
        result = await client.call_tool("boom", {})
    assert result.is_error
    text = text_of(result)
    assert "500 Internal Server Error" in text
    assert "try again later" in text
    assert len(text) < 600
    assert "more characters not shown" in text


async def test_503s_are_retried_for_idempotent_methods(upstream: Upstream) -> None:
    tools = [
        tool(
            "flaky", "/flaky", parameters=[{"name": "failures", "in": "query", "schema": {"type": "integer"}}]
        )
    ]
    async with serving(config(upstream, tools, retries=2)) as (client, _):
        result = await client.call_tool("flaky", {"failures": 2})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["body"] == {"ok": True, "attempt": 3}


async def test_retries_give_up_after_the_configured_count(upstream: Upstream) -> None:
    tools = [
        tool(
            "flaky", "/flaky", parameters=[{"name": "failures", "in": "query", "schema": {"type": "integer"}}]
        )
    ]
    async with serving(config(upstream, tools, retries=1)) as (client, _):
        result = await client.call_tool("flaky", {"failures": 5})
    assert result.is_error
    assert "503" in text_of(result)
    assert upstream.hits["/bad/flaky"] == 2


async def test_a_post_is_never_retried(upstream: Upstream) -> None:
    tools = [tool("flaky", "/flaky", method="POST")]
    writable = config(upstream, tools, retries=3)
    writable["apis"][0]["allow_writes"] = True
    async with serving(writable) as (client, _):
        result = await client.call_tool("flaky", {})
    assert result.is_error
    assert upstream.hits["/bad/flaky"] == 1


async def test_a_429_is_retried_after_its_retry_after(upstream: Upstream) -> None:
    tools = [tool("limited", "/limited")]
    async with serving(config(upstream, tools)) as (client, _):
        result = await client.call_tool("limited", {})
    assert not result.is_error
    assert upstream.hits["/bad/limited"] == 2


async def test_a_retry_after_longer_than_allowed_is_reported_not_waited_for(upstream: Upstream) -> None:
    tools = [tool("limited", "/limited", parameters=[{"name": "wait", "in": "query"}])]
    async with serving(config(upstream, tools, max_retry_after=5)) as (client, _):
        result = await client.call_tool("limited", {"wait": "3600"})
    assert result.is_error
    assert "429" in text_of(result)
    assert "try again after 3600 s" in text_of(result)
    assert upstream.hits["/bad/limited"] == 1


async def test_the_concurrency_limit_holds_calls_back_without_failing_them(upstream: Upstream) -> None:
    results: list[bool] = []
    async with serving(config(upstream, [tool("echo", "/echo")], concurrency=1, rate_per_second=1000)) as (
        client,
        _,
    ):

        async def one() -> None:
            results.append((await client.call_tool("echo", {})).is_error)

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
    assert results == [False] * 8
    assert upstream.hits["/bad/echo"] == 8
