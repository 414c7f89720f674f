"""Calls to one upstream API: pooled, guarded, bounded, retried, and scrubbed of credentials.

One `httpx2.AsyncClient` per API, built once, whose connections go through `GuardedBackend`
(resolve once, check every address, connect to the checked address). Each call runs under a total
timeout, a per-API concurrency limit and rate limit; idempotent methods are retried on connection
failures, timeouts, 429 and 502/503/504 with exponential backoff and jitter, honouring
`Retry-After`. Redirects are not followed unless the API allows it, and then only within the API's
own origin and base path, each hop re-checked. Bodies are read while streaming up to a byte cap.
Credentials are added here, to requests for the API's own origin only, and scrubbed from anything
this module hands back.
"""

import base64
import email.utils
import logging
import math
import random
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import anyio
import httpcore2
import httpx2

from bulkhead.errors import UnavailableError
from bulkhead_http.config import ApiConfig
from bulkhead_http.netguard import BlockedAddressError, GuardedBackend, Resolver
from bulkhead_http.operations import RequestParts
from bulkhead_http.urls import origin_of

__all__ = ["RETRY_STATUSES", "RateLimiter", "Upstream", "UpstreamResponse", "parse_retry_after"]

logger = logging.getLogger("bulkhead_http")

# httpx2 logs every request URL at INFO (and httpcore2 its traces at DEBUG), query string and any
# API key in it included: whatever level the operator picks, those two stay at WARNING.
for _name in ("httpx2", "httpcore2"):
    logging.getLogger(_name).setLevel(logging.WARNING)

RETRY_STATUSES = frozenset({429, 502, 503, 504})
USER_AGENT = "bulkhead-http/0.1"
REDACTED = "[redacted]"


@dataclass
class UpstreamResponse:
    """What came back: status, reason, content type, the body (capped) and where it was asked."""

    status: int
    reason: str
    content_type: str
    body: bytes
    truncated: bool
    method: str
    path: str
    """The path the call went to, without the query (which may carry a credential)."""
    retry_after: float | None = None
    location: str | None = None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class RateLimiter:
    """A token bucket: `rate` calls a second on average, bursts of up to `max(1, rate)`."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self._lock = anyio.Lock()

    async def acquire(self) -> None:
        """Wait until a call may start."""
        async with self._lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                await anyio.sleep((1 - self.tokens) / self.rate)
                self.tokens = 1.0
                self.updated = time.monotonic()
            self.tokens -= 1


def _ssl_context(api: ApiConfig) -> ssl.SSLContext:
    if api.ca_file is not None:
        return ssl.create_default_context(cafile=str(api.ca_file))
    return httpcore2.default_ssl_context(_trust_env=False)


class _RetryableError(Exception):
    """A failure worth another attempt for an idempotent request."""


class Upstream:
    """The one client of one API."""

    def __init__(self, api: ApiConfig, resolver: Resolver, *, connected: list[str] | None = None) -> None:
        self.api = api
        self.limits = api.limits
        self.base_url = api.base_url
        self.origin = origin_of(api.base_url)
        self.base_path = urlsplit(api.base_url).path.rstrip("/")
        self.backend = GuardedBackend(resolver, allow_private=api.allow_private_network, connected=connected)
        context = _ssl_context(api)
        limits = self.limits
        transport = httpx2.AsyncHTTPTransport(verify=context, trust_env=False)
        # httpx2's transport takes no network backend; its pool does. Same pool, our backend.
        transport._pool = httpcore2.AsyncConnectionPool(  # pyright: ignore[reportPrivateUsage] -- see above
            ssl_context=context,
            max_connections=limits.concurrency,
            max_keepalive_connections=limits.concurrency,
            keepalive_expiry=30.0,
            network_backend=self.backend,
        )
        self.client = httpx2.AsyncClient(
            transport=transport,
            timeout=httpx2.Timeout(
                connect=limits.connect_timeout,
                read=limits.read_timeout,
                write=limits.read_timeout,
                pool=limits.total_timeout,
            ),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json, text/*;q=0.5, */*;q=0.1"},
        )
        self._concurrency = anyio.CapacityLimiter(limits.concurrency)
        self._rate = RateLimiter(limits.rate_per_second) if limits.rate_per_second else None
        self._auth_headers: dict[str, str] = {}
        self._auth_query: list[tuple[str, str]] = []
        self._secrets: list[str] = []
        self._setup_auth()

    def _setup_auth(self) -> None:
        auth = self.api.auth
        if auth.type == "none" or auth.secret is None:
            return
        secret = auth.secret.get_secret_value()
        self._secrets = [secret, quote(secret, safe=""), quote(secret)]
        if auth.type == "bearer":
            self._auth_headers["Authorization"] = f"Bearer {secret}"
        elif auth.type == "basic":
            token = base64.b64encode(f"{auth.username}:{secret}".encode()).decode()
            self._auth_headers["Authorization"] = f"Basic {token}"
            self._secrets.append(token)
        elif auth.location == "header":
            self._auth_headers[auth.name] = secret
        else:
            self._auth_query.append((auth.name, secret))
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in self._secrets if len(s) >= 4}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """`text` with every form of this API's credential (or a start of one at its end) replaced."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        # A body cut at the byte cap may end inside the credential: drop that prefix too.
        for secret in self._secrets:
            for size in range(len(secret) - 1, 3, -1):
                if text.endswith(secret[:size]):
                    return text[:-size] + REDACTED
        return text

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()

    async def call(self, parts: RequestParts, *, idempotent: bool) -> UpstreamResponse:
        """Send `parts` to the API and read the answer, within every limit of the API.

        Raises:
            UnavailableError: the API could not be reached, refused by the guard, or too slow.
        """
        limits = self.limits
        started = time.monotonic()
        try:
            with anyio.fail_after(limits.total_timeout):
                async with self._concurrency:
                    if self._rate is not None:
                        await self._rate.acquire()
                    return await self._with_retries(parts, idempotent=idempotent)
        except TimeoutError:
            raise UnavailableError(
                f"The upstream API did not answer {parts.method} {parts.path} within "
                f"{limits.total_timeout:g} s (total timeout); try again later or narrow the request."
            ) from None
        finally:
            logger.debug("%s %s took %.1f ms", parts.method, parts.path, (time.monotonic() - started) * 1000)

    async def _with_retries(self, parts: RequestParts, *, idempotent: bool) -> UpstreamResponse:
        limits = self.limits
        attempts = 1 + (limits.retries if idempotent else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = await self._send(parts)
            except _RetryableError as exc:
                if last:
                    raise UnavailableError(self.scrub(str(exc))) from None
                await anyio.sleep(self._backoff(attempt))
                continue
            if response.status not in RETRY_STATUSES or last:
                return response
            delay = self._backoff(attempt)
            if response.retry_after is not None:
                if response.retry_after > limits.max_retry_after:
                    return response  # longer than we may wait: the model sees the 429/503 and the delay
                delay = response.retry_after
            logger.info(
                "%s %s answered %s; retry %d of %d in %.2f s",
                parts.method,
                parts.path,
                response.status,
                attempt + 1,
                attempts - 1,
                delay,
            )
            await anyio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int) -> float:
        base = self.limits.backoff_seconds * math.pow(2, attempt)
        return base * (0.5 + random.random())  # noqa: S311 -- jitter, not a secret

    async def _send(self, parts: RequestParts) -> UpstreamResponse:
        method = parts.method
        url = self.base_url + parts.path
        params: list[tuple[str, str | int | float | bool | None]] = [*parts.query, *self._auth_query]
        body = parts.body
        has_body = parts.has_body
        for hop in range(self.api.max_redirects + 1):
            request = self.client.build_request(
                method,
                url,
                params=params or None,
                headers={**parts.headers, **self._auth_headers},
                json=body if has_body else None,
            )
            self._check_target(request.url)
            try:
                response = await self.client.send(request, stream=True)
            except BlockedAddressError as exc:
                raise UnavailableError(
                    f"Refused to connect: {exc}. This API may only reach public addresses"
                    + ("" if self.api.allow_private_network else " (allow_private_network is off)")
                    + "."
                ) from None
            except httpx2.TimeoutException:
                raise _RetryableError(
                    f"The upstream API timed out on {method} {parts.path} "
                    f"(connect {self.limits.connect_timeout:g} s / read {self.limits.read_timeout:g} s)."
                ) from None
            except httpx2.TransportError as exc:
                raise _RetryableError(
                    f"Could not reach the upstream API for {method} {parts.path}: {type(exc).__name__}: {exc}"
                ) from None
            try:
                location = response.headers.get("location")
                if response.is_redirect and location is not None and self.api.follow_redirects:
                    if hop == self.api.max_redirects:
                        raise UnavailableError(
                            f"The upstream API redirected {method} {parts.path} more than "
                            f"{self.api.max_redirects} times; stopped."
                        )
                    target = request.url.join(location)
                    self._check_redirect(target, parts.path)
                    if response.status_code == 303 or (
                        response.status_code in (301, 302) and method not in ("GET", "HEAD")
                    ):
                        method, body, has_body = "GET", None, False
                    # The target carries its own query; the credential is added again (same origin).
                    url = str(target.copy_with(query=None))
                    params = [*httpx2.QueryParams(target.query).multi_items(), *self._auth_query]
                    continue
                return await self._read(response, method, parts.path)
            finally:
                await response.aclose()
        raise AssertionError("unreachable")  # pragma: no cover

    def _check_target(self, url: httpx2.URL) -> None:
        if origin_of(str(url.copy_with(query=None))) != self.origin:
            raise UnavailableError("Refused: the request would leave the API's origin.")

    def _check_redirect(self, target: httpx2.URL, path: str) -> None:
        if origin_of(str(target.copy_with(query=None))) != self.origin:
            raise UnavailableError(
                f"The upstream API redirected {path} to another origin ({target.scheme}://{target.host}); "
                "redirects are only followed within the API's own origin, so the call stopped there."
            )
        # `target.path` is percent-decoded: `/base/%2e%2e/admin` reads as `/base/../admin`, which
        # servers that decode before normalising serve as `/admin`. Judge every raw segment.
        raw = target.raw_path.split(b"?", 1)[0].decode("ascii", "replace")
        for segment in raw.split("/"):
            decoded = unquote(segment)
            if decoded in (".", "..") or "/" in decoded or "\\" in decoded:
                raise UnavailableError(
                    f"The upstream API redirected {path} to a path with an encoded dot segment or "
                    "slash; the call stopped there."
                )
        if not (target.path + "/").startswith(self.base_path + "/"):
            raise UnavailableError(
                f"The upstream API redirected {path} outside its base path; the call stopped there."
            )

    async def _read(self, response: httpx2.Response, method: str, path: str) -> UpstreamResponse:
        cap = self.limits.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        truncated = False
        try:
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size > cap:
                    truncated = True
                    break
        except httpx2.TimeoutException:
            raise _RetryableError(
                f"The upstream API stopped sending the body of {method} {path} "
                f"(read timeout {self.limits.read_timeout:g} s)."
            ) from None
        except httpx2.TransportError as exc:
            raise _RetryableError(
                f"The upstream API broke off the body of {method} {path}: {type(exc).__name__}."
            ) from None
        body = b"".join(chunks)[:cap]
        return UpstreamResponse(
            status=response.status_code,
            reason=response.reason_phrase,
            content_type=response.headers.get("content-type", ""),
            body=body,
            truncated=truncated,
            method=method,
            path=path,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            location=response.headers.get("location"),
        )
