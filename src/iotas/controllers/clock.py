"""The time a controller sees: the system's, or one a test moves by hand."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from iotas.domain import clock


class Clock(Protocol):
    def now_us(self) -> int: ...

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        """Return after `seconds`, or as soon as `wake` is set (it is not cleared here)."""
        ...


class SystemClock:
    def now_us(self) -> int:
        return clock.now_us()

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        if wake is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), seconds)


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock for tests: time stands still until `advance()`; sleepers whose time has come
    (or whose `wake` is set) return then, so a test steps a controller round by round."""

    def __init__(self, now_us: int = 1_800_000_000_000_000) -> None:
        self._now_us = now_us
        self._moved = asyncio.Event()
        self.sleepers = 0

    def now_us(self) -> int:
        return self._now_us

    def advance(self, seconds: float) -> None:
        self._now_us += round(seconds * 1_000_000)
        self._moved.set()
        self._moved = asyncio.Event()

    async def sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        until = self._now_us + round(seconds * 1_000_000)
        self.sleepers += 1
        try:
            while self._now_us < until and not (wake is not None and wake.is_set()):
                moved = asyncio.ensure_future(self._moved.wait())
                waits: set[asyncio.Future[object]] = {moved}  # type: ignore[arg-type]
                woken = None if wake is None else asyncio.ensure_future(wake.wait())
                if woken is not None:
                    waits.add(woken)  # type: ignore[arg-type]
                try:
                    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()
        finally:
            self.sleepers -= 1
