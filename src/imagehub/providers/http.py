"""The HTTP side every upstream provider shares: one pooled client per route, and one
classification of every upstream answer into the task errors of `imagehub.errors`.

The classification, in one place:

    transport timeout, HTTP 408/504         UpstreamTimeout      retryable
    connection refused/reset, cut body      UpstreamUnavailable  retryable
    HTTP 409/425/5xx, malformed, truncated  UpstreamUnavailable  retryable
    HTTP 429 (Retry-After, retry-after-ms)  UpstreamRateLimited  retryable, after the delay
    HTTP 401/402/403/404, quota, billing    UpstreamConfigError  final; another route may work
    HTTP 400/422 and other 4xx              UpstreamError        final: the request is wrong

A malformed or truncated body is counted as "unavailable" rather than as a new error code: it is
what a connection cut mid-answer or an overloaded proxy produces, and a new attempt usually
succeeds. Content-policy answers are vendor specific and are recognised by each provider.
Messages name the route and quote the upstream's own words, with the route's secrets removed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from imagehub.errors import (
    TaskError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    parse_retry_after,
)
from imagehub.providers import deadlines
from imagehub.providers.sse import Event, EventDecoder

_DETAIL_CHARS = 300
_CONNECT_SECONDS = 10.0
_CHUNK_BYTES = 256 * 1024
#: (field name, (file name, bytes, content type)) of a multipart body
Files = list[tuple[str, tuple[str, bytes, str]]]


@dataclass(frozen=True, slots=True)
class Answer:
    """An upstream's HTTP answer, read in full."""

    status_code: int
    #: case-insensitive
    headers: Mapping[str, str]
    content: bytes


#: what a streamed call accepts
_EVENT_STREAM = {"Accept": "text/event-stream"}
#: request bodies up to this size are sent as bytes (see `UpstreamHTTP.request`)
_INLINE_BODY_BYTES = 64 * 1024


class UpstreamHTTP:
    """One pooled HTTP client session for one route, with its errors classified.

    aiohttp rather than httpx here: at a few hundred concurrent calls httpx's connection pool
    costs about 10 ms of CPU per request (it rescans every connection), aiohttp about 0.15 ms
    (bench/README.md). Nothing is retried here: the hub's failure policy is the only one.
    Environment proxies are ignored; redirects are not followed.
    """

    def __init__(
        self,
        *,
        label: str,
        timeout: float,
        max_connections: int | None = None,
        secrets: tuple[str, ...] = (),
    ) -> None:
        self.label = label
        self.timeout = timeout
        self.max_connections = max_connections
        self._secrets = tuple(s for s in secrets if s)
        # created on first use: a session belongs to the event loop that runs the calls
        self._session: aiohttp.ClientSession | None = None
        connect = min(_CONNECT_SECONDS, timeout)
        self._read_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect, sock_read=timeout
        )
        #: inside a deadline that passes first (the failure policy's, as long as this one):
        #: no read timer per connection, rearmed on every chunk, that would never fire first
        self._no_read_timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self.max_connections or 0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._read_timeout,
                trust_env=False,
                raise_for_status=False,
            )
        return self._session

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json_body: Any,
        data: Mapping[str, str] | None,
        files: Files | None,
        accept: Mapping[str, str] | None = None,
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The request, its body encoded, to be sent by entering the block it returns."""
        body, kind = _payload(json_body, data, files)
        covered = deadlines.covered(self.timeout)
        return self._client().request(
            method,
            url,
            headers={**(headers or {}), **kind, **(accept or {})},
            data=body,
            allow_redirects=False,
            timeout=self._no_read_timeout if covered else self._read_timeout,
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        files: Files | None = None,
        max_bytes: int | None = None,
    ) -> Answer:
        """Send one request and read the whole answer; transport failures become task errors.

        With `max_bytes`, a longer answer is refused (`UpstreamError`) as soon as it says or
        shows it is, without reading the rest.
        """
        call = self._send(method, url, headers, json_body, data, files)
        # aiohttp holds what it sends, as its own types: this frame, which lasts as long as
        # the call, lets go of the caller's
        headers = json_body = data = files = None
        try:
            async with call as response:
                if max_bytes is None:
                    content = await _read_whole(response)
                else:
                    content = await self._read_capped(response, max_bytes)
                return Answer(response.status, response.headers, content)
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self.label} did not answer within {self.timeout:g} s"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(
                f"{self.label} could not be reached or cut the connection "
                f"({self.redact(_describe(exc))})"
            ) from None

    async def events(
        self,
        method: str,
        url: str,
        *,
        refused: Callable[[Answer], TaskError],
        max_event_bytes: int,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: Mapping[str, str] | None = None,
        files: Files | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Send one request and yield the server-sent events of its answer as they arrive.

        An answer other than a 200 event stream is read whole and raised as `refused(answer)`;
        transport failures are task errors as in `request`, and so is a stream cut inside an
        event. Iterate it inside `contextlib.aclosing`, so that leaving early closes the answer.
        """
        call = self._send(method, url, headers, json_body, data, files, _EVENT_STREAM)
        headers = json_body = data = files = None
        try:
            async with call as response:
                streaming = response.content_type == "text/event-stream"
                if response.status != 200 or not streaming:
                    content = await self._read_capped(response, max_event_bytes)
                    raise refused(Answer(response.status, response.headers, content))
                decoder = EventDecoder(max_event_bytes)
                async for chunk in response.content.iter_any():
                    for event in decoder.feed(chunk):
                        yield event
                if decoder.pending:
                    raise UpstreamUnavailable(f"{self.label} cut its event stream inside an event")
        except TimeoutError:
            raise UpstreamTimeout(
                f"{self.label} sent nothing for {self.timeout:g} s while streaming"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable(
                f"{self.label} could not be reached or cut its event stream "
                f"({self.redact(_describe(exc))})"
            ) from None
        except ValueError as exc:  # an oversized event, or one that is not UTF-8
            raise UpstreamUnavailable(
                f"{self.label} sent a malformed event stream ({exc})"
            ) from None

    async def _read_capped(self, response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
        too_large = UpstreamError(f"{self.label}'s answer is larger than {max_bytes:,} bytes")
        if response.content_length is not None and response.content_length > max_bytes:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def json(self, response: Answer) -> dict[str, Any]:
        """The JSON object of a response; a malformed body is a retryable failure."""
        try:
            # orjson: a multi-megabyte base64 image parses several times faster than with json
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamUnavailable(
                f"{self.label} returned a malformed (non-JSON or truncated) answer "
                f"with HTTP {response.status_code}"
            ) from None
        if not isinstance(body, dict):
            raise UpstreamUnavailable(f"{self.label} returned an unexpected JSON answer")
        return body

    def redact(self, text: str) -> str:
        """Upstream text made safe to show: secrets removed, length capped."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = " ".join(text.split())
        if len(text) > _DETAIL_CHARS:
            text = text[: _DETAIL_CHARS - 3] + "..."
        return text

    def error(
        self,
        response: Answer,
        detail: str = "",
        *,
        retry_after: float | None = None,
        config_hint: str = "",
    ) -> TaskError:
        """The task error an unsuccessful HTTP answer means (see the module docstring)."""
        status = response.status_code
        said = f" (HTTP {status}: {self.redact(detail)})" if detail else f" (HTTP {status})"
        if status == 429:
            wait = retry_after if retry_after is not None else retry_after_header(response)
            return UpstreamRateLimited(f"{self.label} is rate limiting the hub{said}", wait)
        if status in (408, 504):
            return UpstreamTimeout(f"{self.label} timed out{said}")
        if status in (409, 425) or status >= 500:
            return UpstreamUnavailable(f"{self.label} is unavailable{said}")
        if status in (401, 403):
            return UpstreamConfigError(
                f"{self.label} refused the route's credentials{said}. "
                f"{config_hint or 'Check the API key configured for this route.'}"
            )
        if status in (402, 404):
            what = "the upstream model id" if status == 404 else "the account's billing"
            return UpstreamConfigError(f"{self.label} refused the request{said}; check {what}")
        return UpstreamError(f"{self.label} rejected the request{said}")


def retry_after_header(response: Answer) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    return parse_retry_after(response.headers.get("retry-after"))


def parse_duration(value: object) -> float | None:
    """A protobuf JSON duration ("37s", "0.5s") in seconds."""
    if isinstance(value, str) and value.endswith("s"):
        try:
            return max(0.0, float(value[:-1]))
        except ValueError:
            return None
    return None


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def _read_whole(response: aiohttp.ClientResponse) -> bytes:
    """The whole answer, its chunks joined once.

    `response.read()` joins them twice: first the chunks that arrived together, then all of
    them (for a 4K image's 14.5 MB of base64, some 4 ms of CPU more).
    """
    if response.headers.get("Content-Encoding"):  # aiohttp inflates it: read() knows how best
        return await response.read()
    return b"".join([chunk async for chunk, _ in response.content.iter_chunks()])


def _payload(
    json_body: Any, data: Mapping[str, str] | None, files: Files | None
) -> tuple[Any, dict[str, str]]:
    """A request's body (a form, JSON or none) and the header it needs."""
    if files is not None or data is not None:
        return _form(data or {}, files or []), {}
    if json_body is not None:
        return _json(json_body), {"Content-Type": "application/json"}
    return None, {}


def _json(value: Any) -> bytes | BytesIO:
    """A JSON request body: a large one as a stream (aiohttp writes bytes in one go, holding the
    event loop), a small one as bytes, sent with the headers in one write."""
    raw = orjson.dumps(value)
    if len(raw) > _INLINE_BODY_BYTES:
        return BytesIO(raw)
    # copied: orjson's bytes keep a 4 KB buffer, which the call would hold to its end
    return bytes(memoryview(raw))


def _form(fields: Mapping[str, str], files: Files) -> aiohttp.FormData:
    form = aiohttp.FormData(quote_fields=False)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content, content_type) in files:
        form.add_field(name, BytesIO(content), filename=filename, content_type=content_type)
    return form


class HTTPProvider:
    """What every upstream provider shares: its route name, base URL, key and pooled session."""

    def __init__(
        self,
        *,
        name: str,
        api_key: SecretStr | None,
        base_url: str,
        timeout: float,
        max_connections: int | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._key = api_key
        self.http = UpstreamHTTP(
            label=name, timeout=timeout, max_connections=max_connections, secrets=(self.secret,)
        )

    @property
    def secret(self) -> str:
        """The route's key in clear, for its auth header; empty when it has none."""
        return self._key.get_secret_value() if self._key else ""

    async def aclose(self) -> None:
        await self.http.aclose()
