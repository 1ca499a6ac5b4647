"""The event-stream decoder of streamed upstream answers: events whatever the chunking."""

from __future__ import annotations

import pytest

from imagehub.providers.sse import Event, EventDecoder

STREAM = (
    b": keep-alive\n\n"
    b"event: image_generation.partial_image\n"
    b'data: {"b64_json": "' + b"A" * 300_000 + b'"}\n\n'
    b"event: image_generation.completed\r\n"
    b"data: one\r\n"
    b"data: two\r\n\r\n"
    b"data: unnamed\n\n"
)
EXPECTED = [
    Event("image_generation.partial_image", '{"b64_json": "' + "A" * 300_000 + '"}'),
    Event("image_generation.completed", "one\ntwo"),
    Event("message", "unnamed"),
]


@pytest.mark.parametrize("size", [1, 7, 4096, 65_536, len(STREAM)])
def test_events_come_out_whole_whatever_the_chunks(size):
    decoder = EventDecoder(max_event_bytes=1_000_000)
    events = []
    for start in range(0, len(STREAM), size):
        events += decoder.feed(STREAM[start : start + size])
    assert events == EXPECTED
    assert not decoder.pending


def test_a_stream_cut_inside_an_event_is_pending():
    decoder = EventDecoder(max_event_bytes=1_000_000)
    assert decoder.feed(STREAM[:1000]) == []
    assert decoder.pending


@pytest.mark.parametrize("newline", [True, False])
def test_an_event_over_the_cap_is_refused_before_it_is_all_read(newline):
    decoder = EventDecoder(max_event_bytes=10_000)
    chunk = b"data: " + b"A" * 20_000 + (b"\n" if newline else b"")
    with pytest.raises(ValueError, match="longer than 10,000 bytes"):
        decoder.feed(chunk)
