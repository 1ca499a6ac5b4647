"""Fakes users can reuse in their own tests: a scripted provider and an in-memory hub."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass, field

from PIL import Image

from imagehub.catalog import Catalog
from imagehub.errors import TaskError
from imagehub.hub import Hub
from imagehub.media import MemoryMedia
from imagehub.providers import GeneratedImage, GenerationRequest, GenerationResult
from imagehub.routing.router import Router
from imagehub.settings import Settings
from imagehub.store import MemoryStore
from imagehub.wakeups.notifier import Notifier
from imagehub.wiring import build_hub


def tiny_png(width: int = 8, height: int = 8, color: tuple[int, int, int] = (200, 80, 40)) -> bytes:
    """A small solid PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class ScriptedProvider:
    """Answers from a script: each call takes the next step (an exception or a result).

    With an empty script it returns `num_images` copies of one stored PNG, after `delay`
    seconds: a provider whose own cost is negligible, for measuring the hub itself.
    """

    name: str = "scripted"
    #: the route kind it stands in for, which prices its tasks (prices.toml); "" is a kind the
    #: price book does not know: priced as fal lists the model
    kind: str = ""
    image: bytes = field(default_factory=tiny_png)
    delay: float = 0.0
    script: list[TaskError | GenerationResult | Callable[[GenerationRequest], GenerationResult]] = (
        field(default_factory=list)
    )
    requests: list[GenerationRequest] = field(default_factory=list)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, TaskError):
                raise step
            return step if isinstance(step, GenerationResult) else step(request)
        count = int(request.params.get("num_images", 1))
        return GenerationResult(
            images=tuple(GeneratedImage(self.image, "image/png") for _ in range(count))
        )

    async def aclose(self) -> None:
        pass


def memory_hub(
    provider: ScriptedProvider | None = None, *, run_worker: bool = True, **settings: object
) -> Hub:
    """A hub on the in-memory store and media, served by `provider` (demo if None)."""
    catalog = Catalog.load()
    if provider is None:
        from imagehub.providers.demo import DemoProvider

        router = Router({}, fallback=DemoProvider(catalog))
    else:
        router = Router({}, fallback=provider)
    # image work on threads: no worker processes for a hub that lives in one test
    settings.setdefault("image_processes", 0)
    return build_hub(
        Settings(**settings),  # type: ignore[arg-type]
        catalog=catalog,
        router=router,
        store=MemoryStore(),
        media=MemoryMedia(),
        notifier=Notifier(),
        run_worker=run_worker,
    )
