"""The safe fetcher against real loopback servers: redirects, slow, endless and lying bodies.

The servers run on 127.0.0.1, which the policy allow-lists (as `IMAGEHUB_FETCH_ALLOW_PRIVATE`
would); every other private address stays refused, also when a redirect points there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from imagehub.outbound.address import AddressPolicy
from imagehub.outbound.client import FetchError, Refused, SafeClient, TimedOut, TooLarge
from imagehub.outbound.fetch import NotAnImage, sniff_image
from imagehub.testing import tiny_png

PNG = tiny_png()
Writer = asyncio.StreamWriter
Handler = Callable[[Writer], Awaitable[None]]


def head(status: str, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status}", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode()


class Scripted:
    """A raw HTTP/1.1 server on loopback; each path runs a coroutine that writes the answer."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[str] = []
        self.url = ""
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        current = asyncio.current_task()
        assert current is not None
        self._handlers.add(current)
        try:
            line = (await reader.readline()).decode()
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            path = line.split(" ")[1] if " " in line else "/"
            self.requests.append(path)
            await self.routes.get(path, _not_found)(writer)
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._handlers.discard(current)

    def body(self, path: str, body: bytes, ctype: str = "image/png") -> None:
        async def answer(w: Writer) -> None:
            w.write(head("200 OK", {"Content-Type": ctype, "Content-Length": str(len(body))}))
            w.write(body)

        self.routes[path] = answer

    def redirect(self, path: str, location: str) -> None:
        async def answer(w: Writer) -> None:
            w.write(head("302 Found", {"Location": location, "Content-Length": "0"}))

        self.routes[path] = answer


async def _not_found(w: Writer) -> None:
    w.write(head("404 Not Found", {"Content-Length": "0"}))


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    s = Scripted()
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def client() -> AsyncIterator[SafeClient]:
    c = SafeClient(AddressPolicy.parse("127.0.0.1/32"))
    yield c
    await c.aclose()


async def get(client: SafeClient, url: str, max_bytes: int = 100_000, deadline: float = 5):
    return await client.get(url, max_bytes=max_bytes, deadline=deadline, sniff=sniff_image)


async def test_redirects_are_followed_up_to_three(server, client):
    server.body("/img", PNG)
    server.redirect("/r3", "/r2")
    server.redirect("/r2", server.url + "/r1")
    server.redirect("/r1", "/img")
    assert await get(client, server.url + "/r3") == PNG
    assert server.requests == ["/r3", "/r2", "/r1", "/img"]


async def test_a_fourth_redirect_is_refused(server, client):
    server.body("/img", PNG)
    for n in range(4, 0, -1):
        server.redirect(f"/r{n}", f"/r{n - 1}" if n > 1 else "/img")
    with pytest.raises(Refused, match="more than 3"):
        await get(client, server.url + "/r4")
    assert "/img" not in server.requests


async def test_a_redirect_loop_is_refused(server, client):
    server.redirect("/loop", "/loop")
    with pytest.raises(Refused, match="redirected"):
        await get(client, server.url + "/loop")
    assert server.requests == ["/loop"] * 4


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/img",  # loopback, but not the allow-listed 127.0.0.1
        "http://10.0.0.1:{port}/img",
        "http://2130706433:{port}/img",  # 127.0.0.1 in decimal, on the allow-list: still fine
        "file:///etc/passwd",
        "gopher://127.0.0.1:{port}/_x",
    ],
)
async def test_every_redirect_hop_is_checked_again(server, client, location):
    port = server.url.rsplit(":", 1)[1]
    server.body("/img", PNG)
    server.redirect("/hop", location.format(port=port))
    if "2130706433" in location:
        assert await get(client, server.url + "/hop") == PNG
        return
    with pytest.raises(Refused):
        await get(client, server.url + "/hop")
    assert server.requests == ["/hop"]


async def test_a_slow_drip_body_hits_the_total_deadline(server, client):
    async def drip(w: Writer) -> None:
        w.write(head("200 OK", {"Content-Type": "image/png", "Content-Length": "100000"}))
        w.write(PNG[:16])
        for _ in range(1000):  # a byte every 50 ms: each read is quick, the whole is not
            await w.drain()
            w.write(b"\0")
            await asyncio.sleep(0.05)

    server.routes["/drip"] = drip
    with pytest.raises(TimedOut):
        await get(client, server.url + "/drip", deadline=0.5)


async def test_a_server_that_never_answers_hits_the_deadline(server, client):
    async def silent(w: Writer) -> None:
        await asyncio.sleep(30)

    server.routes["/silent"] = silent
    with pytest.raises(TimedOut):
        await get(client, server.url + "/silent", deadline=0.5)


async def test_a_declared_oversized_body_is_refused_before_it_is_read(server, client):
    async def huge(w: Writer) -> None:
        w.write(head("200 OK", {"Content-Type": "image/png", "Content-Length": str(10**9)}))
        w.write(PNG)

    server.routes["/huge"] = huge
    with pytest.raises(TooLarge):
        await get(client, server.url + "/huge", max_bytes=50_000)


async def test_an_endless_body_without_a_length_is_cut_at_the_cap(server, client):
    async def endless(w: Writer) -> None:
        w.write(head("200 OK", {"Content-Type": "image/png", "Transfer-Encoding": "chunked"}))
        chunk = PNG + b"\0" * 4096
        for _ in range(100_000):
            w.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await w.drain()

    server.routes["/endless"] = endless
    with pytest.raises(TooLarge):
        await get(client, server.url + "/endless", max_bytes=50_000)


async def test_a_small_content_length_that_lies_gives_only_what_it_declared(server, client):
    async def liar(w: Writer) -> None:
        w.write(head("200 OK", {"Content-Type": "image/png", "Content-Length": "70"}))
        w.write(PNG + b"\0" * 200_000)

    server.routes["/liar"] = liar
    assert await get(client, server.url + "/liar", max_bytes=50_000) == PNG[:70]


async def test_html_labelled_as_png_is_refused_from_its_first_bytes(server, client):
    server.body("/page.png", b"<html>" + b"x" * 10_000 + b"</html>", ctype="image/png")
    with pytest.raises(NotAnImage):
        await get(client, server.url + "/page.png")


async def test_a_post_never_follows_a_redirect(server, client):
    server.redirect("/hook", "/elsewhere")
    status, _ = await client.post(server.url + "/hook", b"{}", {}, deadline=5)
    assert status == 302
    assert server.requests == ["/hook"]


async def test_without_the_allow_list_loopback_is_refused(server):
    server.body("/img", PNG)
    strict = SafeClient(AddressPolicy())
    with pytest.raises(Refused, match="not a public address"):
        await get(strict, server.url + "/img")
    await strict.aclose()
    assert server.requests == []


async def test_errors_never_show_the_query_string(server, client):
    with pytest.raises(FetchError) as caught:
        await get(client, server.url + "/missing?token=s3cr3t")
    assert "s3cr3t" not in str(caught.value)
