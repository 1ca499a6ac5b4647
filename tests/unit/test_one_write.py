"""`OneWrite`: a response's head goes out with its body in one write, and nothing is lost,
reordered or held past the event loop's next turn."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Callable
from typing import Any

from imagehub.cli.server import OneWrite

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class Recording:
    """A transport that records what reaches it, call by call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", bytes(data)))

    def writelines(self, data: list[bytes]) -> None:
        self.calls.append(("writelines", b"".join(data)))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def get_extra_info(self, name: str) -> Any:
        return f"info:{name}"


def one_write() -> tuple[OneWrite, Recording]:
    raw = Recording()
    return OneWrite(raw, asyncio.get_running_loop()), raw  # type: ignore[arg-type]


async def test_a_head_and_its_body_reach_the_transport_in_one_call():
    transport, raw = one_write()
    transport.write(HEAD)
    assert raw.calls == []
    transport.write(b"{}")
    assert raw.calls == [("writelines", HEAD + b"{}")]
    await asyncio.sleep(0)
    assert raw.calls == [("writelines", HEAD + b"{}")]  # the loop's turn writes nothing more


async def test_a_head_alone_goes_out_on_the_loops_next_turn():
    """A streamed response's head does not wait for its first event."""
    transport, raw = one_write()
    transport.write(HEAD)
    await asyncio.sleep(0)
    assert raw.calls == [("write", HEAD)]


async def test_a_large_write_goes_straight_through_after_what_was_held():
    transport, raw = one_write()
    body = b"x" * (OneWrite.HELD_BYTES + 1)
    transport.write(body)
    assert raw.calls == [("write", body)]
    transport.write(HEAD)
    transport.write(body)
    assert raw.calls[1:] == [("writelines", HEAD + body)]


async def test_close_sends_what_was_held_first():
    transport, raw = one_write()
    transport.write(HEAD)
    transport.close()
    assert raw.calls == [("write", HEAD), ("close", b"")]
    await asyncio.sleep(0)
    assert len(raw.calls) == 2


async def test_abort_drops_what_was_held_and_a_closed_connection_gets_nothing():
    transport, raw = one_write()
    transport.write(HEAD)
    transport.abort()
    await asyncio.sleep(0)
    assert raw.calls == [("abort", b"")]
    transport.write(HEAD)  # the peer is gone: straight to the transport, which drops it
    assert raw.calls[-1] == ("write", HEAD)


async def test_a_held_write_is_dropped_when_the_peer_left_before_the_next_turn():
    transport, raw = one_write()
    transport.write(HEAD)
    raw.closing = True
    await asyncio.sleep(0)
    assert raw.calls == []


async def test_writelines_keeps_the_order_of_what_was_held():
    transport, raw = one_write()
    transport.write(HEAD)
    transport.writelines([b"{", b"}"])
    assert raw.calls == [("writelines", HEAD + b"{}")]


async def test_anything_else_is_the_transports():
    transport, _ = one_write()
    assert transport.get_extra_info("peername") == "info:peername"


async def _received(write: Callable[[OneWrite], None]) -> bytes:
    """What the peer of a real socket reads, `write` having written through `OneWrite`, then
    closed it."""
    left, right = socket.socketpair()
    left.setblocking(False)
    loop = asyncio.get_running_loop()
    raw, _ = await loop.create_connection(asyncio.Protocol, sock=left)
    transport = OneWrite(raw, loop)  # type: ignore[arg-type]
    write(transport)
    transport.close()
    right.settimeout(5)

    def read_all() -> bytes:
        received = b""
        while chunk := right.recv(65536):
            received += chunk
        return received

    with right:
        return await asyncio.to_thread(read_all)


async def test_over_a_real_socket_the_peer_reads_every_byte_in_order():
    def write(transport: OneWrite) -> None:
        for n in range(50):
            transport.write(HEAD)
            transport.write(b"%02d" % n)
        transport.write(b"tail")

    received = await _received(write)
    assert received == b"".join(HEAD + b"%02d" % n for n in range(50)) + b"tail"


async def test_a_4k_images_answer_follows_its_head_whole():
    """An OpenAI answer carrying a 4K PNG as base64: ~14.5 MB after a held head."""
    body = base64.b64encode(os.urandom(10_900_000))
    head = b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(body)

    def write(transport: OneWrite) -> None:
        transport.write(head)
        transport.write(body)

    assert await _received(write) == head + body
