"""Running controllers: every node runs its own; a cluster-wide one runs on the node that holds
its lease, and another node takes it over within `TRY_EVERY_S` (plus the time PostgreSQL
takes to see the holder's connection gone; a killed process's is gone at once) when the
holder dies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from iotas.aio import cancel_and_wait
from iotas.store.leases import Leases

log = logging.getLogger("iotas.controllers")

# How often a node that does not hold a lease tries to take it, and how often the holder
# checks that it still does (a holder cut off from the database stops within this).
TRY_EVERY_S = 2.0
CHECK_EVERY_S = 2.0


class Controller(Protocol):
    """Background work: `run()` works until cancelled. `Periodic` is the usual base."""

    name: str
    cluster_wide: bool

    async def run(self) -> None: ...


class Controllers:
    """Starts and stops controllers; `leading()` names the cluster-wide ones run here."""

    def __init__(
        self, leases: Leases, *, try_every: float = TRY_EVERY_S, check_every: float = CHECK_EVERY_S
    ) -> None:
        self.leases = leases
        self._try_every = try_every
        self._check_every = check_every
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._leased: set[str] = set()  # the cluster-wide ones started here
        self._leading: set[str] = set()

    def leading(self) -> list[str]:
        return sorted(self._leading)

    def running(self) -> list[str]:
        return sorted(self._tasks)

    async def start(self, controller: Controller) -> None:
        """Start it now; a cluster-wide one first tries its lease once, so a lone node leads
        before it serves anything."""
        if controller.name in self._tasks:
            raise ValueError(f"a controller named {controller.name!r} runs already")
        if controller.cluster_wide:
            self._leased.add(controller.name)
            held = await self.leases.try_take(controller.name)
            if held:
                self._leading.add(controller.name)  # it leads from now, not from a turn later
            work = self._lead(controller, held)
        else:
            work = controller.run()
        self._tasks[controller.name] = asyncio.create_task(work, name=f"iotas-{controller.name}")

    async def stop(self, name: str) -> None:
        await cancel_and_wait([self._tasks.pop(name, None)])
        self._leading.discard(name)
        if name in self._leased:
            self._leased.discard(name)
            await self.leases.give_up(name)

    async def stop_all(self) -> None:
        """Stop every controller (bounded), then let the leases go."""
        tasks, self._tasks = self._tasks, {}
        await cancel_and_wait(tasks.values())
        self._leading.clear()
        self._leased.clear()
        await self.leases.close()

    async def _lead(self, controller: Controller, held: bool) -> None:
        name = controller.name
        while True:
            if not held:
                await asyncio.sleep(self._try_every)
                held = await self.leases.try_take(name)
                continue
            log.info("leading %s", name)
            self._leading.add(name)
            work = asyncio.create_task(controller.run(), name=f"iotas-{name}-work")
            try:
                while not work.done():
                    await asyncio.wait({work}, timeout=self._check_every)
                    if not work.done() and not await self.leases.still_held():
                        log.warning("lost the lease %s; another node may take it", name)
                        break
            finally:
                self._leading.discard(name)
                await cancel_and_wait([work])
            if work.done() and not work.cancelled() and work.exception() is None:
                log.warning("%s ended by itself; letting its lease go", name)
            await self.leases.give_up(name)
            held = False


class Loop:
    """A controller whose work is one coroutine that runs until cancelled (a journal
    follower, say); for periodic work use `Periodic`."""

    def __init__(
        self, name: str, work: Callable[[], Awaitable[None]], *, cluster_wide: bool = False
    ) -> None:
        self.name = name
        self.cluster_wide = cluster_wide
        self._work = work

    async def run(self) -> None:
        await self._work()
