"""One HTTP client for every URL a client hands the hub: input images and webhooks.

http and https only, no user info, at most 2048 characters; every connection vetted by
`outbound.address` at connect time; redirects followed by hand (GET only, at most 3), each hop
checked again; a byte cap enforced while the body streams; one deadline over the whole exchange;
no proxy or other setting taken from the environment. Error messages name what was refused
and why, never the address a name resolved to, and never a URL's query string.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpcore
import httpx

from imagehub.outbound.address import AddressPolicy, Blocked, GuardedBackend, Resolver

MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 3
_SCHEMES = ("http", "https")
_HEADERS = {"User-Agent": "imagehub", "Accept-Encoding": "identity"}


class FetchError(Exception):
    """A URL could not be fetched; the message is safe to show the client."""


class Refused(FetchError):
    """The URL, an address it resolved to, or a redirect is not allowed."""


class TooLarge(FetchError):
    """The body is larger than the cap."""


class TimedOut(FetchError):
    """The exchange did not finish before its deadline."""


class BadStatus(FetchError):
    """The server answered with a status other than the one expected."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"answered HTTP {status}")


def quiet_url_logs() -> None:
    """httpx logs every request's full URL at INFO, and a client's URL may carry a token."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def check_url(url: str) -> httpx.URL:
    """The parsed URL if the hub may fetch it at all (the address is checked at connect time)."""
    if len(url) > MAX_URL_LENGTH:
        raise Refused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise Refused("the URL contains spaces or control characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise Refused("it is not a valid URL") from None
    if parsed.scheme not in _SCHEMES:
        raise Refused("only http and https URLs are allowed")
    if parsed.userinfo:
        raise Refused("URLs with a user name or password are not allowed")
    if not parsed.host:
        raise Refused("the URL has no host")
    return parsed


def check_target(url: str, policy: AddressPolicy) -> httpx.URL:
    """`check_url`, then what the address policy refuses before any lookup: the one check of
    every URL a client hands the hub, when the hub is handed it."""
    parsed = check_url(url)
    try:
        policy.check_host(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80))
    except Blocked as exc:
        raise Refused(f"the hub may not connect there: {exc}") from None
    return parsed


def redact(url: str) -> str:
    """The URL without its query and fragment (which may carry tokens), for messages and logs."""
    try:
        parsed = httpx.URL(url)
        shown = str(parsed.copy_with(query=None, fragment=None, userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        shown = url.split("?", 1)[0].split("#", 1)[0]
    return shown if len(shown) <= 200 else shown[:200] + "..."


class _GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose every connection `outbound.address` vetted.

    httpx has no network-backend option, so the pool it builds is replaced by one that has.
    """

    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


class SafeClient:
    """GET and POST to client-supplied URLs under the address policy."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        resolver: Resolver | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        backend = GuardedBackend(policy, resolver=resolver, inner=inner)
        self._client = httpx.AsyncClient(
            transport=_GuardedTransport(backend),
            trust_env=False,
            follow_redirects=False,
            timeout=httpx.Timeout(10.0, connect=5.0),
            headers=_HEADERS,
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self,
        url: str,
        *,
        max_bytes: int,
        deadline: float,
        sniff: Callable[[bytes], None] | None = None,
    ) -> bytes:
        """The body of a 200 answer, following up to 3 redirects, within `deadline` seconds.

        `sniff` sees the first bytes (up to 64) before the rest is read, and may raise.
        """
        try:
            async with asyncio.timeout(deadline):
                for _ in range(MAX_REDIRECTS + 1):
                    target = check_url(url)
                    async with self._client.stream("GET", target) as response:
                        location = response.headers.get("location")
                        if response.is_redirect and location:
                            url = str(target.join(location))
                            continue
                        if response.status_code != 200:
                            raise BadStatus(response.status_code)
                        return await _read(response, max_bytes, sniff)
                raise Refused(f"it redirected more than {MAX_REDIRECTS} times")
        except TimeoutError:
            raise TimedOut(f"it did not finish within {deadline:g} s") from None
        except Blocked as exc:
            raise Refused(f"the hub may not connect there: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError(_describe(exc)) from None

    async def post(
        self,
        url: str,
        content: bytes,
        headers: dict[str, str],
        *,
        deadline: float,
        max_response_bytes: int = 1024,
    ) -> tuple[int, httpx.Headers]:
        """POST once, never following a redirect; the status and headers of the answer."""
        try:
            async with asyncio.timeout(deadline):
                target = check_url(url)
                request = self._client.build_request("POST", target, content=content)
                request.headers.update(headers)
                response = await self._client.send(request, stream=True)
                try:
                    await _read(response, max_response_bytes, None, truncate=True)
                finally:
                    await response.aclose()
                return response.status_code, response.headers
        except TimeoutError:
            raise TimedOut(f"it did not answer within {deadline:g} s") from None
        except Blocked as exc:
            raise Refused(f"the hub may not connect there: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError(_describe(exc)) from None


async def _read(
    response: httpx.Response,
    max_bytes: int,
    sniff: Callable[[bytes], None] | None,
    *,
    truncate: bool = False,
) -> bytes:
    """The body, refused (or cut, with `truncate`) past `max_bytes` whatever the headers say."""
    declared = response.headers.get("content-length", "")
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise TooLarge(f"it is larger than {max_bytes:,} bytes")
    chunks: list[bytes] = []
    size = 0
    pending = sniff
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if pending is not None and size >= 64:
            pending(b"".join(chunks)[:64])
            pending = None
        if size > max_bytes:
            if truncate:
                break
            raise TooLarge(f"it is larger than {max_bytes:,} bytes")
    body = b"".join(chunks)
    if pending is not None:
        pending(body)
    return body[:max_bytes]


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "the server did not answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "no connection could be made (unknown host, refused or unreachable)"
    return f"the exchange failed ({type(exc).__name__})"
