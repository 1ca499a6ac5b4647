"""Partial images: how long a streamed partial image takes to reach the hub's event stream.

An in-process hub (SQLite and a media folder in a temp dir, as `imagehub serve` has them) with
an OpenAI route to the loopback fake of OpenAI's event stream (tests/providers/wire.py), whose
partial and final images are 1024x1024 PNGs of random pixels (about 3 MB each, 4 MB as base64).
For each partial image: the time from the fake having written its event to the task, read by
`Hub.events` as the API's /events does, listing it. That covers reading and decoding the event,
checking the image, writing the file, recording it on the task row and the wake-up.

    python bench/partials.py --tasks 20
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fakes

from pydantic import SecretStr
from tests.providers.fake_upstream import FakeUpstream
from tests.providers.wire import OpenAIStreaming

from imagehub.settings import Settings
from imagehub.wiring import build_hub


async def main(tasks: int, partials: int) -> None:
    fake = OpenAIStreaming(sent=[])
    upstream = await FakeUpstream(fake).start()
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=Path(data_dir),
            demo=False,
            openai_api_key=SecretStr("sk-bench"),
            openai_base_url=upstream.url + "/v1",
        )
        hub = build_hub(settings)
        await hub.start()
        loop = asyncio.get_running_loop()
        lags: list[float] = []
        totals: list[float] = []
        try:
            for _ in range(tasks):
                start = loop.time()
                input = {"prompt": "p"}
                task, _ = await hub.submit("bench", "gpt-image-2", input, partial_images=partials)
                seen: list[float] = []
                async for current in hub.events("bench", task.id):
                    seen += [loop.time()] * (len(current.partials) - len(seen))
                    if current.ready:
                        assert current.status == "succeeded", current.error
                        break
                totals.append(loop.time() - start)
                assert fake.sent is not None
                written = fake.sent[-1][:partials]
                lags += [s - w for s, w in zip(seen, written, strict=True)]
        finally:
            await hub.stop()
            await upstream.close()
    ms = sorted(lag * 1000 for lag in lags)
    print(f"{tasks} tasks x {partials} partial images of 1024x1024 (3 MB PNG each)")
    print(
        f"partial image written upstream -> listed on the task: p50 {statistics.median(ms):.0f} ms,"
        f" p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms"
    )
    print(f"whole task (submit -> ready): p50 {statistics.median(totals) * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--partials", type=int, default=3, choices=(1, 2, 3))
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.partials))
