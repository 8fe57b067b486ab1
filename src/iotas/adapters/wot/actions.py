"""Invocations of an adopted WoT Thing, run from the queue through its TD's action forms.

The worker of the Thing (worker.py) runs one round when an invocation is created for it,
when it starts (on the node that leads the WoT reconciler), and when the Thing answers
again after being unreachable: every pending invocation (queued, or delivered with no
result), in creation order, one at a time, is recorded `delivered` (one more attempt),
invoked through the TD's `invokeaction` form (HTTP, CoAP or MQTT), and ends `succeeded` with
the Thing's answer as its output or `failed` with its error. While the Thing cannot be
reached the round stops (order is kept) and is tried again with backoff (1 s doubling to
60 s) until the invocation expires (`expired`, by the expiry sweep).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from iotas.adapters.wot.errors import ThingUnreachable, WotError
from iotas.controllers.periodic import Periodic
from iotas.domain import td_model as ops
from iotas.domain.invocations import Invocation
from iotas.domain.td_model import Interactions
from iotas.services.context import Context
from iotas.services.invocations import Invocations

log = logging.getLogger("iotas.wot")

RETRY_FIRST = 1.0
RETRY_MAX = 60.0
# With nothing to retry, a round runs when woken (or this often, to catch a missed wake).
IDLE_RECHECK = 300.0
MAX_MESSAGE = 1000

# One exchange with the Thing: the invocation's action with its input; the Thing's answer.
Invoke = Callable[[Invocation], Awaitable[Any]]


class ActionRunner:
    def __init__(
        self,
        thing_id: str,
        interactions: Interactions,
        invocations: Invocations,
        invoke: Invoke,
        ctx: Context,
        *,
        on_unreachable: Callable[[str], Awaitable[None]],
    ) -> None:
        self.thing_id = thing_id
        self.things = interactions
        self.invocations = invocations
        self.invoke = invoke
        self.ctx = ctx
        self.on_unreachable = on_unreachable
        self.retrying = False
        self.invoked = 0
        self._retry = RETRY_FIRST
        self._delay = IDLE_RECHECK
        self.rounds = Periodic(
            f"wot-actions {thing_id}",
            self._round,
            interval=lambda: self._delay,
            log=log,
        )

    def wake(self) -> None:
        self.rounds.wake()

    async def _round(self, _now_us: int) -> int:
        try:
            done, settled = await self.run_pending()
        except Exception:  # a bug, or the database away: try again later
            log.exception("wot: running the invocations of %s failed", self.thing_id)
            done, settled = 0, False
        if settled:
            self.retrying = False
            self._retry = RETRY_FIRST
            self._delay = IDLE_RECHECK
        else:
            self.retrying = True
            self._delay = self._retry * random.uniform(0.8, 1.2)
            self._retry = min(self._retry * 2, RETRY_MAX)
        return done

    async def run_pending(self) -> tuple[int, bool]:
        """Run what is pending, in order: (how many ended, whether all did). Stops at the
        first the Thing could not be reached for (it and those after it wait)."""
        done = 0
        for invocation in await self.invocations.pending(self.thing_id):
            if not await self.run(invocation):
                return done, False
            done += 1
        return done, True

    async def run(self, invocation: Invocation) -> bool:
        """Invoke one; False when the Thing could not be reached (to be tried again)."""
        action = self.things.actions.get(invocation.action)
        if action is None or not action.forms_for(ops.INVOKE_ACTION):
            await self._report(invocation, _failure("unknown", "its TD offers no form for it"))
            return True
        await self.invocations.delivered(self.ctx, [invocation.id])
        self.invoked += 1
        try:
            output = await self.invoke(invocation)
        except ThingUnreachable as exc:
            await self.on_unreachable(f"invoking {invocation.action}: {exc}")
            return False
        except WotError as exc:
            await self._report(invocation, _failure("thing_error", str(exc)))
            return True
        if await self._report(invocation, {"status": "succeeded", "output": output}) is None:
            # An answer iotas cannot keep (too large, not JSON): it must not stay pending.
            await self._report(invocation, _failure("bad_output", "the Thing's answer was refused"))
        return True

    async def _report(self, invocation: Invocation, result: dict[str, Any]) -> Invocation | None:
        return await self.invocations.report(self.ctx, self.thing_id, invocation.id, result)


def _failure(code: str, message: str) -> dict[str, Any]:
    return {"status": "failed", "error": {"code": code, "message": message[:MAX_MESSAGE]}}
