"""The simulated devices' actions: the model declares them, the handlers answer them, a set
share fails, and the same seed fails the same invocations."""

from __future__ import annotations

import random
from typing import Any

import pytest

from iotas.sdk import Device
from iotas.sim.actions import ACTIONS, MODEL, ActionBehaviour, answer_actions


def test_the_model_declares_every_action_with_its_input_schema() -> None:
    assert set(ACTIONS) == {"ping", "blink", "reboot"}
    assert MODEL["actions"]["blink"]["input"]["required"] == ["times"]


def test_behaviour_is_checked() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        ActionBehaviour(failure_rate=1.5)
    with pytest.raises(ValueError, match="negative"):
        ActionBehaviour(delay=-1)


async def run(device: Device, name: str, value: Any) -> tuple[str, Any]:
    seen: list[float] = []

    async def progress(percent: float) -> None:
        seen.append(percent)

    try:
        return "succeeded", await device.actions.handlers[name](value, progress)
    except Exception as exc:
        return "failed", str(exc)


async def outcomes(seed: int, rate: float, n: int = 200) -> list[str]:
    device = Device("sim:a-1")
    answer_actions(device, ActionBehaviour(failure_rate=rate, delay=0.0), random.Random(seed))
    return [(await run(device, "ping", None))[0] for _ in range(n)]


async def test_a_share_fails_and_a_seed_repeats_it() -> None:
    first = await outcomes(7, 0.25)
    assert 20 < first.count("failed") < 80
    assert first == await outcomes(7, 0.25)
    assert (await outcomes(7, 0.0)).count("failed") == 0


async def test_slow_actions_report_progress_and_answer() -> None:
    device = Device("sim:a-1")
    answer_actions(device, ActionBehaviour(delay=0.01), random.Random(1))
    assert await run(device, "blink", {"times": 3}) == ("succeeded", {"blinked": 3})
    assert await run(device, "reboot", {}) == ("succeeded", {"rebooted": True})
