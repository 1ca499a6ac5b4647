"""The safe fetcher, table-driven: what may be connected to, decided at connect time.

A stub resolver stands in for DNS and a recording mock backend for the network, so every row
shows which address the hub would have connected to, if any. Nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

import httpcore
import pytest

from imagehub.errors import ImageDownloadError
from imagehub.media import MemoryMedia
from imagehub.outbound.address import AddressPolicy, Blocked, is_public, system_resolver
from imagehub.outbound.client import FetchError, Refused, SafeClient, check_url
from imagehub.outbound.fetch import Fetcher, NotAnImage, sniff_image
from imagehub.testing import tiny_png

PNG = tiny_png()
ANSWER = [
    b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n"
    + f"Content-Length: {len(PNG)}\r\n\r\n".encode(),
    PNG,
]
PUBLIC = "93.184.216.34"


class RecordingBackend(httpcore.AsyncMockBackend):
    """Answers every connection with a PNG and records the address it was asked to reach."""

    def __init__(self) -> None:
        super().__init__(ANSWER)
        self.connected: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        return await super().connect_tcp(host, port, timeout, local_address, socket_options)


class StubResolver:
    """Answers from a table; a list of answers is used one lookup after the other."""

    def __init__(self, table: dict[str, list[str] | list[list[str]]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answer = self.table.get(host)
        if answer is None:  # literals resolve as the system resolver reads them, offline
            return await system_resolver(host, port)
        if answer and isinstance(answer[0], list):
            return answer.pop(0) if len(answer) > 1 else answer[0]  # type: ignore[return-value]
        return answer  # type: ignore[return-value]


async def fetch(url: str, resolver: StubResolver, policy: AddressPolicy | None = None):
    backend = RecordingBackend()
    client = SafeClient(policy or AddressPolicy(), resolver=resolver, inner=backend)
    try:
        body = await client.get(url, max_bytes=10_000, deadline=5)
    finally:
        await client.aclose()
    return body, backend.connected


# ---------------------------------------------------------------- the address policy


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        (PUBLIC, True),
        ("2606:4700:4700::1111", True),
        ("64:ff9b::808:808", True),  # NAT64 of a public address (DNS64 networks)
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),
        ("100.100.100.200", False),
        ("192.0.0.8", False),
        ("198.18.0.1", False),
        ("203.0.113.9", False),
        ("224.0.0.1", False),  # multicast
        ("240.0.0.1", False),  # reserved
        ("255.255.255.255", False),
        ("::", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::ffff:a9fe:a9fe", False),
        ("::a9fe:a9fe", False),  # IPv4-compatible
        ("64:ff9b::a9fe:a9fe", False),  # NAT64
        ("64:ff9b::7f00:1", False),
        ("64:ff9b:1::a00:1", False),  # local-use NAT64
        ("2002:a9fe:a9fe::", False),  # 6to4
        ("2002:7f00:1::", False),
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", False),  # Teredo, client 127.0.0.1
        ("fd00:ec2::254", False),
        ("fc00::1", False),
        ("fe80::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
    ],
)
def test_the_address_policy(address, public):
    assert is_public(ipaddress.ip_address(address)) is public
    policy = AddressPolicy()
    if public:
        policy.check("example.com", address, 443)
    else:
        with pytest.raises(Blocked):
            policy.check("example.com", address, 443)


def test_only_default_ports_for_public_addresses():
    policy = AddressPolicy()
    policy.check("example.com", PUBLIC, 80)
    with pytest.raises(Blocked, match="port 8080"):
        policy.check("example.com", PUBLIC, 8080)


def test_the_allow_list_admits_networks_and_names_on_any_port_but_never_metadata():
    policy = AddressPolicy.parse("10.0.0.0/8, 127.0.0.1, images.internal, 169.254.0.0/16")
    policy.check("x", "10.9.8.7", 8443)
    policy.check("x", "127.0.0.1", 5000)
    policy.check("x", "::ffff:10.0.0.1", 81)
    policy.check("images.internal.", "192.168.5.5", 9000)
    policy.check("x", "169.254.1.1", 80)
    for metadata in ("169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254"):
        with pytest.raises(Blocked, match="metadata"):
            policy.check("x", metadata, 80)
    with pytest.raises(Blocked):
        policy.check("x", "127.0.0.2", 80)


# ---------------------------------------------------------------- URLs, through the client


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/a.png",
        "http://0.0.0.0/a.png",
        "http://[::1]/a.png",
        "http://[::ffff:127.0.0.1]/a.png",
        "http://[::ffff:a9fe:a9fe]/latest/meta-data",
        "http://169.254.169.254/latest/meta-data",
        "http://100.100.100.200/latest/meta-data",
        "http://[fd00:ec2::254]/latest/meta-data",
        "http://[64:ff9b::a9fe:a9fe]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://2130706433/a.png",  # decimal 127.0.0.1
        "http://0x7f000001/a.png",
        "http://0177.0.0.1/a.png",  # octal
        "http://127.1/a.png",
        "http://localhost/a.png",
        "http://metadata.internal/computeMetadata/v1/",
        "http://private.example/a.png",
        "http://mixed.example/a.png",
        "http://example.com:8080/a.png",
        "http://example.com:22/",
        "file:///etc/passwd",
        "gopher://example.com/_GET",
        "ftp://example.com/a.png",
        "dict://example.com:11211/stats",
        "http://user:secret@example.com/a.png",
        "http://example.com/" + "a" * 2100,
    ],
)
async def test_refused_urls_never_reach_a_connection(url):
    resolver = StubResolver(
        {
            "example.com": [PUBLIC],
            "localhost": ["127.0.0.1", "::1"],
            "metadata.internal": ["169.254.169.254"],
            "private.example": ["10.0.0.7"],
            "mixed.example": [PUBLIC, "192.168.0.10"],  # one bad address refuses them all
        }
    )
    backend = RecordingBackend()
    client = SafeClient(AddressPolicy(), resolver=resolver, inner=backend)
    with pytest.raises(Refused):
        await client.get(url, max_bytes=10_000, deadline=5)
    await client.aclose()
    assert backend.connected == []


async def test_a_public_name_connects_to_the_vetted_address_itself():
    resolver = StubResolver({"images.example": [PUBLIC]})
    body, connected = await fetch("http://images.example/a.png", resolver)
    assert body == PNG
    assert connected == [(PUBLIC, 80)]  # the address, never the name: no second lookup


async def test_dns_rebinding_is_caught_at_connect_time():
    # public for whoever looks first (a check before the request), private afterwards
    resolver = StubResolver({"rebind.example": [[PUBLIC], ["127.0.0.1"]]})
    assert await resolver("rebind.example", 80) == [PUBLIC]  # e.g. a validation step
    backend = RecordingBackend()
    client = SafeClient(AddressPolicy(), resolver=resolver, inner=backend)
    with pytest.raises(Refused, match="not a public address"):
        await client.get("http://rebind.example/a.png", max_bytes=10_000, deadline=5)
    await client.aclose()
    assert backend.connected == []


async def test_dns_rebinding_between_two_fetches_is_caught_on_the_second():
    resolver = StubResolver({"rebind.example": [[PUBLIC], ["10.0.0.1"]]})
    backend = RecordingBackend()
    client = SafeClient(AddressPolicy(), resolver=resolver, inner=backend)
    assert await client.get("http://rebind.example/a", max_bytes=10_000, deadline=5) == PNG
    with pytest.raises(Refused):
        await client.get("http://rebind.example/b", max_bytes=10_000, deadline=5)
    await client.aclose()
    assert backend.connected == [(PUBLIC, 80)]
    assert resolver.lookups == ["rebind.example", "rebind.example"]


async def test_an_allow_listed_private_host_is_fetched():
    resolver = StubResolver({"images.internal": ["10.1.1.1"]})
    policy = AddressPolicy.parse("images.internal")
    body, connected = await fetch("http://images.internal:8080/a.png", resolver, policy)
    assert (body, connected) == (PNG, [("10.1.1.1", 8080)])


def test_check_url_accepts_plain_http_and_https():
    assert check_url("https://example.com/a.png?x=1").host == "example.com"
    with pytest.raises(Refused):
        check_url("https://")


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (PNG[:64], True),
        (b"\xff\xd8\xff\xe0" + b"\0" * 60, True),
        (b"GIF89a" + b"\0" * 58, True),
        (b"RIFF\x10\0\0\0WEBPVP8 " + b"\0" * 48, True),
        (b"<html><body>hi</body></html>", False),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", False),
        (b"%PDF-1.7", False),
        (b"II*\0" + b"\0" * 60, False),  # TIFF
        (b"", False),
    ],
)
def test_content_is_sniffed(head, ok):
    if ok:
        sniff_image(head)
    else:
        with pytest.raises(NotAnImage):
            sniff_image(head)


def test_every_refusal_is_a_fetch_error():
    assert issubclass(Refused, FetchError) and issubclass(NotAnImage, FetchError)


# ---------------------------------------------------------------- refusals a person can act on


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1/a.png", "IMAGEHUB_FETCH_ALLOW_PRIVATE=127.0.0.1 would allow it"),
        ("http://[::1]/a.png", "IMAGEHUB_FETCH_ALLOW_PRIVATE=::1 would allow it"),
        (f"http://{PUBLIC}:8080/a.png", f"IMAGEHUB_FETCH_ALLOW_PRIVATE={PUBLIC} would allow"),
    ],
    ids=["loopback", "loopback-v6", "port"],
)
async def test_a_refusal_names_the_setting_that_allows_it(url, words):
    with pytest.raises(Refused, match="the hub may not connect there") as refused:
        await fetch(url, StubResolver({}))
    assert words in str(refused.value)
    allowed = AddressPolicy.parse(words.split("=", 1)[1].split()[0])
    body, _ = await fetch(url, StubResolver({}), allowed)  # and it does allow it
    assert body == PNG


async def test_a_metadata_refusal_says_no_setting_changes_it():
    with pytest.raises(Refused, match="refused whatever the settings say"):
        await fetch("http://169.254.169.254/", StubResolver({}), AddressPolicy.parse("0.0.0.0/0"))


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "hub.example"])
async def test_a_hub_file_url_this_hub_has_not_is_no_such_file(host):
    missing = "f_" + "a" * 22 + ".png"
    resolver = StubResolver({"hub.example": [PUBLIC]})

    class NotFoundBackend(RecordingBackend):
        def __init__(self) -> None:
            httpcore.AsyncMockBackend.__init__(
                self, [b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]
            )
            self.connected = []

    client = SafeClient(AddressPolicy(), resolver=resolver, inner=NotFoundBackend())
    fetcher = Fetcher(MemoryMedia(), max_bytes=10_000, timeout=5, client=client)
    try:
        with pytest.raises(ImageDownloadError) as failed:
            await fetcher.fetch(f"http://{host}/hub/v1/files/{missing}", "image_urls[0]")
    finally:
        await fetcher.aclose()
    assert f"image_urls[0]: no such file {missing} on this hub" in failed.value.message
    assert "public address" not in failed.value.message
