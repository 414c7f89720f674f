"""`bulkhead.serve`: which Host and Origin values pass DNS-rebinding protection, and the HTTP app's
public surface. The transports themselves are exercised end to end in tests/e2e."""

from collections.abc import AsyncIterator

import httpx2
import pytest

from bulkhead.app import BulkheadServer
from bulkhead.serve import build_http_app, transport_security
from bulkhead.settings import ServerSettings

pytestmark = pytest.mark.anyio

LOOPBACK_HOSTS = ["127.0.0.1", "127.0.0.1:*", "localhost", "localhost:*", "[::1]", "[::1]:*"]
LOOPBACK_ORIGINS = ["http://127.0.0.1", "http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]


def settings(**values: object) -> ServerSettings:
    return ServerSettings.model_validate(values)


@pytest.mark.parametrize(
    "values",
    [{}, {"host": "0.0.0.0", "tokens": "a:0123456789abcdef", "allowed_hosts": ["mcp.example.com"]}],
    ids=["loopback", "every interface"],
)
def test_dns_rebinding_protection_is_always_on_with_loopback_names(values: dict[str, object]) -> None:
    security = transport_security(settings(**values))
    assert security.enable_dns_rebinding_protection is True
    assert set(LOOPBACK_HOSTS) <= set(security.allowed_hosts)
    assert set(LOOPBACK_ORIGINS) <= set(security.allowed_origins)
    assert "*" not in security.allowed_hosts
    assert "0.0.0.0" not in security.allowed_hosts


@pytest.mark.parametrize(
    ("configured", "expected", "not_expected"),
    [
        ("mcp.example.com", {"mcp.example.com", "mcp.example.com:*"}, set[str]()),
        ("mcp.example.com:443", {"mcp.example.com:443"}, {"mcp.example.com:*", "mcp.example.com"}),
        ("mcp.example.com:*", {"mcp.example.com:*"}, {"mcp.example.com:*:*"}),
        ("[2001:db8::1]", {"[2001:db8::1]", "[2001:db8::1]:*"}, set[str]()),
        ("[2001:db8::1]:8443", {"[2001:db8::1]:8443"}, {"[2001:db8::1]:8443:*", "[2001:db8::1]:*"}),
        ("10.0.0.5", {"10.0.0.5", "10.0.0.5:*"}, set[str]()),
    ],
)
def test_a_configured_host_without_a_port_is_accepted_on_any_port(
    configured: str, expected: set[str], not_expected: set[str]
) -> None:
    hosts = set(transport_security(settings(allowed_hosts=[configured])).allowed_hosts)
    assert expected <= hosts
    assert not (not_expected & hosts)


def test_configured_origins_are_added_verbatim() -> None:
    origins = transport_security(settings(allowed_origins=["https://app.example.com"])).allowed_origins
    assert "https://app.example.com" in origins
    assert "https://app.example.com:*" not in origins


def test_settings_of_one_server_never_widen_another() -> None:
    first = transport_security(settings(allowed_hosts=["a.example"]))
    second = transport_security(settings())
    assert "a.example" in first.allowed_hosts
    assert "a.example" not in second.allowed_hosts


@pytest.fixture
async def app_client() -> AsyncIterator[httpx2.AsyncClient]:
    configured = settings(tokens="alice:alice-token-0123456789")
    app = build_http_app(BulkheadServer(configured, version="9.9.9"), configured)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://127.0.0.1"
    ) as http:
        yield http


async def test_healthz_is_public_and_names_nothing(app_client: httpx2.AsyncClient) -> None:
    response = await app_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "9.9.9" not in response.text
    assert "bulkhead" not in response.text


@pytest.mark.parametrize("path", ["/mcp", "/sse", "/messages/", "/", "/healthz/extra", "/HEALTHZ"])
async def test_everything_but_healthz_needs_the_token(app_client: httpx2.AsyncClient, path: str) -> None:
    response = await app_client.get(path)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="bulkhead-bulkhead"')
