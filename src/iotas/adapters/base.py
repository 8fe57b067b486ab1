"""The contract every adapter keeps, and the node's set of running adapters.

An adapter folder exposes a `setup(services, controllers)` that builds its adapter, or returns
None when the settings do not ask for it; the runtime's table (`iotas.runtime.table`) lists
them in start order. `start()` returns once the adapter serves; `stop()` undoes it (bounded:
use `iotas.aio.cancel_and_wait` for tasks); `health()` is a small JSON object about it.
Background work an adapter needs runs as controllers (`iotas.controllers`), which it starts
and stops through the `Controllers` it was given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar

from iotas.controllers.supervisor import Controllers
from iotas.services.bundle import Services


class Adapter(Protocol):
    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def health(self) -> dict[str, Any]: ...


Setup = Callable[[Services, Controllers], Adapter | None]
A = TypeVar("A")


class Adapters:
    """The adapters this node runs, in start order; found by their type (`get(WotThings)`),
    so whoever uses one gets it typed."""

    def __init__(self) -> None:
        self._running: list[Adapter] = []

    def add(self, adapter: Adapter) -> None:
        self._running.append(adapter)

    def get(self, kind: type[A]) -> A | None:
        for adapter in self._running:
            if isinstance(adapter, kind):
                return adapter
        return None

    def __iter__(self) -> Iterator[Adapter]:
        return iter(list(self._running))

    def clear(self) -> None:
        self._running.clear()

    def health(self) -> dict[str, dict[str, Any]]:
        return {adapter.name: adapter.health() for adapter in self._running}
