"""Adversarial review: http attacks the first test round did not cover, against a real upstream."""

import pytest

from tests.http.conftest import api, serving, text_of, tool
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
    tools = [tool("go", "/redirect", parameters=[{"name": "to", "in": "query", "required": True}])]
    config = api(
        f"{upstream.base}/bad",
        tools,
        allow_private_network=True,
        follow_redirects=True,
        auth={"type": "bearer", "env": "UPSTREAM_TOKEN"},
    )
    async with serving(config) as (client, _):
        result = await client.call_tool("go", {"to": target})
    assert result.is_error
    assert "stopped there" in text_of(result)
    assert TOKEN not in text_of(result)
    # Only the redirecting request reached the upstream: the credential never went to the target.
    assert [request["path"] for request in upstream.requests] == ["/bad/redirect"]
