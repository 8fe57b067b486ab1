"""Actions under `Device`: invocations iotas sends on `things/{id}/actions/{name}/{inv}`, run
by the handler registered for the action, answered on `.../{inv}/result`. Private.

Delivery is at least once (a device that drops before its result is acknowledged gets the
invocation again), so a repeat of an invocation id seen lately is dropped: the handler runs
once. Handlers run concurrently; the results of one invocation go out in their order
(`running`, progress, then `succeeded` or `failed`) through the device's one queue.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

_log = logging.getLogger("iotas.sdk.device")

Progress = Callable[[float], Awaitable[None]]
ActionHandler = Callable[[Any, Progress], Awaitable[Any]]
# Sends one result document on a topic (queued in order; returns once queued).
Answer = Callable[[str, dict[str, Any]], Awaitable[None]]

# How many invocation ids a device remembers to drop repeats of.
RECENT = 4096
MAX_MESSAGE = 1000


@dataclass(slots=True)
class ActionStats:
    received: int = 0  # invocations taken (each once)
    repeated: int = 0  # repeats of an invocation already taken, dropped
    succeeded: int = 0
    failed: int = 0


class ActionError(Exception):
    """Raise it from a handler to fail with a code of your own (default: the exception's
    class name) and a message."""

    def __init__(self, message: str, *, code: str = "failed") -> None:
        super().__init__(message)
        self.code = code


class Actions:
    def __init__(self, thing_id: str, answer: Answer, *, recent: int = RECENT) -> None:
        self.prefix = f"things/{thing_id}/actions/"
        self.filter = f"{self.prefix}+/+"
        self.thing_id = thing_id
        self.handlers: dict[str, ActionHandler] = {}
        self.stats = ActionStats()
        self._answer = answer
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._limit = recent
        self._tasks: set[asyncio.Task[None]] = set()

    def register(self, name: str, handler: ActionHandler) -> None:
        if not name or any(c in name for c in "/+#") or not name.isprintable():
            raise ValueError(f"{name!r} is not a valid action name (one topic level, no / + #)")
        self.handlers[name] = handler

    def owns(self, topic: str) -> bool:
        return topic.startswith(self.prefix)

    def take(self, topic: str, payload: bytes) -> None:
        """An invocation arrived: run it, unless it is a repeat."""
        levels = topic[len(self.prefix) :].split("/")
        if len(levels) != 2 or not all(levels):
            return  # not an invocation (a result topic echoed by a wildcard, say)
        name, invocation = levels
        if invocation in self._recent:
            self._recent.move_to_end(invocation)
            self.stats.repeated += 1
            return
        self._recent[invocation] = None
        while len(self._recent) > self._limit:
            self._recent.popitem(last=False)
        self.stats.received += 1
        task = asyncio.create_task(
            self._run(name, f"{topic}/result", payload), name=f"iotas-action {invocation}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, name: str, result_topic: str, payload: bytes) -> None:
        await self._safely(result_topic, {"status": "running"})
        try:
            handler = self.handlers.get(name)
            if handler is None:
                raise ActionError(f"{self.thing_id} has no handler for {name!r}", code="unknown")
            try:
                value = orjson.loads(payload) if payload else None
            except orjson.JSONDecodeError:
                raise ActionError("the input is not JSON", code="bad_input") from None

            async def progress(percent: float) -> None:
                done = max(0.0, min(100.0, float(percent)))
                await self._answer(result_topic, {"status": "running", "progress": done})

            output = handler(value, progress)
            if inspect.isawaitable(output):
                output = await output
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.failed += 1
            code = exc.code if isinstance(exc, ActionError) else type(exc).__name__
            error = {"code": code, "message": (str(exc) or code)[:MAX_MESSAGE]}
            await self._safely(result_topic, {"status": "failed", "error": error})
            return
        self.stats.succeeded += 1
        await self._safely(result_topic, {"status": "succeeded", "output": output})

    async def _safely(self, topic: str, result: dict[str, Any]) -> None:
        try:
            await self._answer(topic, result)
        except TypeError:  # an output that is not JSON
            _log.exception("%s: the output of an action is not JSON", self.thing_id)
            error = {"code": "bad_output", "message": "the handler's output is not JSON"}
            await self._answer(topic, {"status": "failed", "error": error})
        except Exception:  # closed meanwhile: iotas sends it again to the next run
            _log.info("%s: a result could not be queued", self.thing_id)

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
