"""What the client commands show: the live progress bar, tables, JSON, and errors."""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import BaseModel

from imagehub.schemas import ModelOut, TaskOut

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class ProgressBar:
    """A live bar on stderr while a task waits: status, queue position, progress, elapsed time
    and ETA, drawn with rich. Quiet unless stdout and stderr are both terminals (output piped
    or captured stays clean), and with --json."""

    def __init__(
        self, *, quiet: bool = False, stream: TextIO | None = None, out: TextIO | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        out = out or sys.stdout
        self.live = not quiet and self.stream.isatty() and out.isatty()
        self._bar: Progress | None = None
        self._row: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        if self.live:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[eta]}"),
                console=Console(file=self.stream),
                transient=True,  # the bar leaves no trace once the task is ready
            )
            self._bar.start()
            self._row = self._bar.add_task("", total=1.0, eta="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()

    def show(self, task: TaskOut) -> None:
        if self._bar is None or self._row is None:
            return
        self._bar.update(
            self._row,
            description=describe(task),
            completed=task.progress or 0.0,
            eta=f"ETA ~{task.eta_seconds:.0f}s" if task.eta_seconds is not None else "",
        )


def describe(task: TaskOut) -> str:
    """`tsk_… queued, 3 ahead` / `tsk_… running (attempt 2)`: the bar's words."""
    text = f"{task.task_id} {task.status}"
    if task.queue_position is not None:
        text += f", {task.queue_position} ahead"
    if task.attempts > 1:
        text += f" (attempt {task.attempts})"
    return text


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
