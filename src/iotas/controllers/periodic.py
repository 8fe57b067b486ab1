"""The base under periodic work: a round now, then one every `interval` (or sooner when
woken), until stopped.

A round is `run_once(now_us)`, which returns how much it did; tests call it directly, or step
the loop with a `ManualClock`. A failed round is logged and the next one tries again: the
loop lives on. Stopping is bounded (`iotas.aio.cancel_and_wait`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from iotas.aio import cancel_and_wait
from iotas.controllers.clock import SYSTEM_CLOCK, Clock

RunOnce = Callable[[int], Awaitable[int]]


class Periodic:
    """`cluster_wide`: the supervisor runs it on one node of a cluster at a time (under a
    lease named `name`); otherwise on every node."""

    def __init__(
        self,
        name: str,
        run_once: RunOnce,
        *,
        interval: float | Callable[[], float],
        log: logging.Logger,
        done: str | None = None,
        failed: str | None = None,
        clock: Clock = SYSTEM_CLOCK,
        wake: asyncio.Event | None = None,
        first_delay: float = 0.0,
        cluster_wide: bool = False,
    ) -> None:
        self.name = name
        self.run_once_at = run_once
        self.cluster_wide = cluster_wide
        self.clock = clock
        self.rounds = 0
        self.failures = 0
        self._interval = interval
        self._log = log
        self._done = done
        self._failed = failed or f"{name} failed"
        self._wake = wake if wake is not None else asyncio.Event()
        self._first_delay = first_delay
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> int:
        """One round, now, on the controller's clock; what it did (a count)."""
        return await self.run_once_at(self.clock.now_us())

    def wake(self) -> None:
        """Run the next round now rather than at the end of the interval."""
        self._wake.set()

    def interval(self) -> float:
        return self._interval() if callable(self._interval) else self._interval

    async def run(self) -> None:
        """Rounds until cancelled."""
        if self._first_delay:
            await self.clock.sleep(self._first_delay, self._wake)
        while True:
            self._wake.clear()
            try:
                count = await self.run_once()
            except Exception:
                self.failures += 1
                self._log.exception(self._failed)
            else:
                if count and self._done is not None:
                    self._log.info(self._done, count)
            self.rounds += 1
            await self.clock.sleep(self.interval(), self._wake)

    def start(self) -> None:
        """Run the rounds in a task of its own (for work that is not supervised)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"iotas-{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None


__all__ = ["Periodic", "RunOnce"]
