"""A runtime (store and services, no server) on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iotas.runtime import Runtime, open_runtime
from iotas.settings import Settings


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    try:
        yield runtime
    finally:
        await runtime.store.dispose()
