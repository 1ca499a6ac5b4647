"""Server-sent events as an upstream streams them (OpenAI's `stream: true`), decoded as they come.

Written here rather than with a line reader: one event of an image stream is a single `data:`
line of several megabytes of base64, longer than any line a stream reader buffers by default.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Event:
    #: the `event:` field ("message" when the event names none, as the SSE standard says)
    name: str
    data: str


class EventDecoder:
    """Feed it bytes as they arrive; it returns the events they complete.

    `max_event_bytes` caps one event: a longer one raises `ValueError` before it is all read.
    """

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = bytearray()
        #: where to look for the next line end (what is before it holds none)
        self._scanned = 0
        self._name = ""
        self._data: list[str] = []
        self._size = 0

    def feed(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end < 0:
                self._scanned = len(self._buffer)
                if self._size + len(self._buffer) > self.max_event_bytes:
                    raise ValueError(f"an event is longer than {self.max_event_bytes:,} bytes")
                return events
            line = bytes(self._buffer[:end]).rstrip(b"\r").decode("utf-8")
            del self._buffer[: end + 1]
            self._scanned = 0
            event = self._line(line)
            if event is not None:
                events.append(event)

    @property
    def pending(self) -> bool:
        """Whether an event was begun and not finished (the stream was cut inside it)."""
        return bool(self._data or self._buffer.strip())

    def _line(self, line: str) -> Event | None:
        if not line:  # a blank line ends the event
            event = Event(self._name or "message", "\n".join(self._data)) if self._data else None
            self._name, self._data, self._size = "", [], 0
            return event
        if line.startswith(":"):  # a comment (keep-alive)
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            self._name = value
        elif field == "data":
            self._size += len(value)
            if self._size > self.max_event_bytes:
                raise ValueError(f"an event is longer than {self.max_event_bytes:,} bytes")
            self._data.append(value)
        return None  # `id` and `retry` mean nothing to a one-shot stream
