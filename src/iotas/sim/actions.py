"""What simulated devices can be asked to do: the actions their Thing Model declares (so
invocations are validated against it) and how each device answers them.

`ping` answers at once; `blink` and `reboot` take their time (`delay` seconds, reporting
progress on the way); a `failure_rate` share of invocations fails, drawn from the device's
random generator (itself drawn from the fleet's seed), so a run with a seed is repeatable.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from iotas.sdk.device import ActionError, Device

# What every simulated Thing is given as its `description`: the model of its actions (not a
# whole TD, which the registry would check as one).
MODEL: dict[str, Any] = {
    "title": "iotas simulated device",
    "actions": {
        "ping": {
            "title": "Answer at once",
            "output": {"type": "object", "properties": {"pong": {"type": "boolean"}}},
        },
        "blink": {
            "title": "Blink the status light",
            "input": {
                "type": "object",
                "properties": {"times": {"type": "integer", "minimum": 1, "maximum": 20}},
                "required": ["times"],
                "additionalProperties": False,
            },
        },
        "reboot": {
            "title": "Restart the device",
            "input": {
                "type": "object",
                "properties": {"reason": {"type": "string", "maxLength": 200}},
                "additionalProperties": False,
            },
        },
    },
}
ACTIONS = tuple(MODEL["actions"])
PROGRESS_STEPS = 4


@dataclass(frozen=True, slots=True)
class ActionBehaviour:
    failure_rate: float = 0.0  # share of invocations that fail
    delay: float = 1.0  # seconds the slow actions (blink, reboot) take

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError(f"the action failure rate is between 0 and 1, not {self.failure_rate}")
        if self.delay < 0:
            raise ValueError("the action delay cannot be negative")


def answer_actions(device: Device, behaviour: ActionBehaviour, rng: random.Random) -> None:
    """Register the simulated handlers of every action of `MODEL` on `device`."""

    def fails() -> bool:
        return rng.random() < behaviour.failure_rate

    async def slowly(progress: Any) -> None:
        for step in range(1, PROGRESS_STEPS):
            await asyncio.sleep(behaviour.delay / PROGRESS_STEPS)
            await progress(100 * step / PROGRESS_STEPS)
        await asyncio.sleep(behaviour.delay / PROGRESS_STEPS)

    @device.on_action("ping")
    async def ping(value: Any, progress: Any) -> Any:
        if fails():
            raise ActionError("simulated failure", code="simulated")
        return {"pong": True}

    @device.on_action("blink")
    async def blink(value: Any, progress: Any) -> Any:
        failing = fails()
        await slowly(progress)
        if failing:
            raise ActionError("the light is broken (simulated)", code="simulated")
        return {"blinked": value["times"]}

    @device.on_action("reboot")
    async def reboot(value: Any, progress: Any) -> Any:
        failing = fails()
        await slowly(progress)
        if failing:
            raise ActionError("did not come back (simulated)", code="simulated")
        return {"rebooted": True}
