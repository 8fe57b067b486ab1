"""The `action` change kind on both backends, with the real controller: a rollout invokes an
action on each Thing through the invocation queue, devices' results (reported through the
service, as the MQTT and HTTP paths do) advance it at once, 10 % failing halts it in its
second wave, and cancelling cancels its queued invocations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from iotas.aio import cancel_and_wait
from iotas.domain.errors import InvalidInput
from iotas.domain.invocations import Status
from iotas.runtime import Runtime, open_runtime
from iotas.services.rollout_engine import RolloutEngine
from iotas.settings import Settings
from rollout_support import (
    ADMIN,
    answer,
    check_halted_in_wave_two,
    failing_per_wave,
    fleet,
    halting_spec,
    wait_for,
    wait_status,
)

TARGET = 'attributes.site == "plant-7"'
REBOOT = {"type": "action", "action": "reboot", "ttl": 600}


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    controller = RolloutEngine(runtime.rollouts, runtime.journal, runtime.signal).controller()
    task = asyncio.create_task(controller.run())
    try:
        yield runtime
    finally:
        await cancel_and_wait([task])
        await runtime.store.dispose()


def spec(**extra: Any) -> dict[str, Any]:
    return {"name": "reboot", "target": TARGET, "change": REBOOT, **extra}


async def test_the_change_is_checked_by_its_kind(rt: Runtime) -> None:
    for change, member in (
        ({"type": "action"}, "change/action"),
        ({"type": "action", "action": "reboot", "ttl": -1}, "change/ttl"),
        ({"type": "action", "action": "reboot", "colour": 1}, "change/colour"),
        ({"type": "firmware"}, "change/type"),
        ("reboot", "change"),
    ):
        with pytest.raises(InvalidInput) as caught:
            await rt.rollouts.create(ADMIN, spec(change=change))
        assert caught.value.extra["field"] == member, change


async def test_results_advance_the_rollout_and_failures_halt_it_in_wave_two(
    rt: Runtime,
) -> None:
    await fleet(rt, 200)
    made = await rt.rollouts.create(ADMIN, halting_spec(TARGET, REBOOT, 200))
    rollout_id = made["id"]
    members = await rt.rollouts.things(rollout_id, limit=1000)
    failing = failing_per_wave(members)

    async def play() -> dict[str, Any]:
        await answer(rt, rollout_id, failing)
        return await rt.rollouts.get(rollout_id)

    done = await wait_for(play, lambda r: r["status"] in ("halted", "succeeded"), timeout=60)
    invoked = await rt.invocations.list(rollout_id=rollout_id, limit=1000)
    check_halted_in_wave_two(done, members, {i.thing_id for i in invoked})
    assert all(i.rollout_id == rollout_id for i in invoked)


async def test_every_thing_once_and_cancel_cancels_queued_invocations(rt: Runtime) -> None:
    await fleet(rt, 30)
    made = await rt.rollouts.create(ADMIN, spec(max_in_flight=10))
    rollout_id = made["id"]
    await wait_for(lambda: rt.rollouts.get(rollout_id), lambda r: r["counts"]["in_flight"] == 10)
    await answer(rt, rollout_id, set())
    got = await wait_for(
        lambda: rt.rollouts.get(rollout_id),
        lambda r: r["counts"]["succeeded"] == 10 and r["counts"]["in_flight"] == 10,
    )
    assert got["status"] == "running"
    cancelled = await rt.rollouts.cancel(ADMIN, rollout_id)
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["pending"] == 0
    done = await wait_for(
        lambda: rt.rollouts.get(rollout_id), lambda r: r["counts"]["in_flight"] == 0
    )
    assert done["counts"] == {
        "pending": 0, "in_flight": 0, "succeeded": 10, "failed": 0, "cancelled": 20
    }  # fmt: skip
    invoked = await rt.invocations.list(rollout_id=rollout_id, limit=1000)
    assert len(invoked) == 20 and len({i.thing_id for i in invoked}) == 20
    assert sorted(str(i.status) for i in invoked) == ["cancelled"] * 10 + ["succeeded"] * 10
    assert await wait_status(lambda: rt.rollouts.get(rollout_id), "cancelled")
    assert not [i for i in invoked if i.status is Status.QUEUED]
