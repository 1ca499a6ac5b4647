"""The contract suites' `store`: every test that takes it runs once per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from imagehub.store import Store
from tests.contract.test_store import BACKENDS


@pytest.fixture(params=list(BACKENDS))
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    backend = BACKENDS[request.param](request, tmp_path)
    await backend.open()
    try:
        yield backend
    finally:
        await backend.close()
