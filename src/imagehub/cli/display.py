"""What the client commands show: the live status line, tables, JSON, and errors."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TextIO

from pydantic import BaseModel

from imagehub.schemas import ModelOut, TaskOut

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_TICK_SECONDS = 0.1


class StatusLine:
    """`⠹ tsk_… running  4.2s` redrawn on stderr while a task runs, only on a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self._text = ""
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._drawer: threading.Thread | None = None

    def __enter__(self) -> StatusLine:
        self._started = time.monotonic()
        if self.live:
            self._drawer = threading.Thread(target=self._draw_loop, daemon=True)
            self._drawer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._drawer is not None:
            self._drawer.join()
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

    def show(self, task: TaskOut) -> None:
        attempt = f" (attempt {task.attempts})" if task.attempts > 1 else ""
        self._text = f"{task.task_id} {task.model} {task.status}{attempt}"

    def _draw_loop(self) -> None:
        for frame in itertools.cycle(_SPINNER):
            elapsed = time.monotonic() - self._started
            self.stream.write(f"\r\x1b[2K{frame} {self._text}  {elapsed:.1f}s")
            self.stream.flush()
            if self._stop.wait(_TICK_SECONDS):
                return


def print_json(value: BaseModel | list[Any] | dict[str, Any], *, indent: int | None = 2) -> None:
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    print(json.dumps(data, indent=indent, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], wrap: Sequence[int] = ()) -> str:
    """Rows under headers, the `wrap` columns wrapped to share the terminal's width."""
    width = shutil.get_terminal_size((120, 24)).columns
    natural = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    fixed = sum(w for i, w in enumerate(natural) if i not in wrap) + 2 * (len(headers) - 1)
    share = max((width - fixed) // max(len(wrap), 1), 16)
    widths = [min(w, share) if i in wrap else w for i, w in enumerate(natural)]
    lines = [_line(headers, widths), _line(["-" * w for w in widths], widths)]
    for row in rows:
        cells = [_cell(c, w, i in wrap) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        for depth in range(max(len(c) for c in cells)):
            lines.append(_line([c[depth] if depth < len(c) else "" for c in cells], widths))
    return "\n".join(lines)


def _cell(text: str, width: int, wrap: bool) -> list[str]:
    return (textwrap.wrap(text, width) or [""]) if wrap else [text]


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()


def model_header(model: ModelOut) -> str:
    return "\n".join(
        [
            f"{model.name} ({model.id}), {model.capability}, by {model.vendor}",
            textwrap.fill(model.description, shutil.get_terminal_size((100, 24)).columns),
        ]
    )


def prompt_of(task: TaskOut, limit: int = 60) -> str:
    prompt = " ".join(str(task.input.get("prompt", "")).split())
    return prompt if len(prompt) <= limit else prompt[: limit - 1] + "…"


def error(message: str) -> None:
    print(f"imagehub: {message}", file=sys.stderr)
