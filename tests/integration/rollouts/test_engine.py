"""The rollout engine on both backends, round by round (`RolloutEngine.run_once`): waves
advance on the success threshold, the failure threshold halts a rollout in its second wave
before the third is touched, max_in_flight and the rate hold, timeouts fail, a continuous
rollout takes in a Thing made later, and a new engine over the same database after a stop
mid-wave neither starts a Thing again nor skips one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from iotas.controllers.clock import SystemClock
from iotas.domain.errors import Conflict
from iotas.runtime import Runtime, open_runtime
from iotas.services.rollout_engine import ENROLL_EVERY_S, RolloutEngine
from iotas.services.rollout_kinds import Outcome
from iotas.settings import Settings
from rollout_support import ADMIN, ScriptedKind, failing, fleet, starts

TARGET = 'attributes.site == "plant-7"'


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    try:
        yield runtime
    finally:
        await runtime.store.dispose()


def engine(rt: Runtime, kind: ScriptedKind) -> RolloutEngine:
    rt.rollouts.kinds.register(kind)
    return RolloutEngine(rt.rollouts, rt.journal, rt.signal)


def spec(**extra: Any) -> dict[str, Any]:
    return {"name": "test", "target": TARGET, "change": {"type": "test"}, **extra}


async def rounds(eng: RolloutEngine, rollout_id: str, *, limit: int = 200) -> dict[str, Any]:
    """Rounds until the rollout is final (or `limit` rounds)."""
    for _ in range(limit):
        await eng.run_once(eng.clock.now_us())
        got = await eng.rollouts.get(rollout_id)
        if got["status"] in ("succeeded", "halted", "cancelled") and not got["counts"]["in_flight"]:
            return got
    return await eng.rollouts.get(rollout_id)


async def test_waves_advance_on_the_success_threshold(rt: Runtime) -> None:
    ids = await fleet(rt, 40)
    held: set[str] = set(ids)
    kind = ScriptedKind(lambda t: None if t in held else Outcome("succeeded"))
    eng = engine(rt, kind)
    made = await rt.rollouts.create(
        ADMIN, spec(waves=[{"count": 10}, {"percent": 50}], success_threshold={"percent": 80})
    )
    assert made["status"] == "running" and made["total"] == 40
    assert [w["size"] for w in made["waves"]] == [10, 20, 10]
    await eng.run_once(eng.clock.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["waves"][0]["counts"]["in_flight"] == 10
    assert got["waves"][1]["opens"] is None
    first = [t["thing"] for t in await rt.rollouts.things(made["id"], status="in_flight")]
    held -= set(first[:7])  # 7 of 10: below 80 %
    await eng.run_once(eng.clock.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["waves"][0]["counts"]["succeeded"] == 7
    assert got["waves"][1]["opens"] is None and got["waves"][1]["counts"]["in_flight"] == 0
    held -= set(first[7:8])  # 8 of 10: the next wave opens and starts
    await eng.run_once(eng.clock.now_us())
    await eng.run_once(eng.clock.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["waves"][1]["opens"] is not None
    assert got["waves"][1]["counts"]["in_flight"] == 20
    held.clear()
    done = await rounds(eng, made["id"])
    assert done["status"] == "succeeded" and done["counts"]["succeeded"] == 40
    assert set((await starts(rt, made["id"])).values()) == {1}


async def test_failure_threshold_halts_in_the_second_wave(rt: Runtime) -> None:
    """1,000 Things, 10 % of each wave failing; the failure threshold (8 % of at least 150
    finished) is reached in the second wave, and the third is never touched."""
    await fleet(rt, 1000)
    bad: set[str] = set()
    kind = ScriptedKind(lambda t: failing(bad)(t))
    eng = engine(rt, kind)
    made = await rt.rollouts.create(
        ADMIN,
        spec(
            waves=[{"percent": 10}, {"percent": 30}, {"percent": 60}],
            success_threshold={"percent": 85},
            failure_threshold={"percent": 8, "min_executed": 150},
        ),
    )
    members = await rt.rollouts.things(made["id"], limit=1000)
    for wave in range(3):
        of_wave = [t["thing"] for t in members if t["wave"] == wave]
        bad |= set(of_wave[: len(of_wave) // 10])
    done = await rounds(eng, made["id"])
    assert done["status"] == "halted" and done["reason"] == "failure_threshold"
    assert done["waves"][0]["counts"]["succeeded"] == 90
    assert done["waves"][1]["counts"]["failed"] > 0
    assert done["waves"][2]["opens"] is None
    assert done["waves"][2]["counts"]["pending"] == 600
    started = await starts(rt, made["id"])
    assert not {t["thing"] for t in members if t["wave"] == 2} & set(started)
    with pytest.raises(Conflict):
        await rt.rollouts.resume(ADMIN, made["id"])


async def test_max_in_flight_and_rate(rt: Runtime) -> None:
    await fleet(rt, 30)
    eng = engine(rt, ScriptedKind(lambda _t: None))
    capped = await rt.rollouts.create(ADMIN, spec(max_in_flight=4))
    rated = await rt.rollouts.create(ADMIN, spec(rate_per_minute=7))
    for _ in range(3):
        await eng.run_once(eng.clock.now_us())
    assert (await rt.rollouts.get(capped["id"]))["counts"]["in_flight"] == 4
    assert (await rt.rollouts.get(rated["id"]))["counts"]["in_flight"] == 7


async def test_pause_resume_cancel(rt: Runtime) -> None:
    await fleet(rt, 20)
    kind = ScriptedKind(lambda _t: None)
    eng = engine(rt, kind)
    made = await rt.rollouts.create(ADMIN, spec(max_in_flight=5))
    paused = await rt.rollouts.pause(ADMIN, made["id"])
    assert paused["status"] == "paused"
    with pytest.raises(Conflict):
        await rt.rollouts.pause(ADMIN, made["id"])
    await eng.run_once(eng.clock.now_us())
    assert (await rt.rollouts.get(made["id"]))["counts"]["in_flight"] == 0
    assert (await rt.rollouts.resume(ADMIN, made["id"]))["status"] == "running"
    await eng.run_once(eng.clock.now_us())
    assert (await rt.rollouts.get(made["id"]))["counts"]["in_flight"] == 5
    cancelled = await rt.rollouts.cancel(ADMIN, made["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["counts"] == {
        "pending": 0, "in_flight": 5, "succeeded": 0, "failed": 0, "cancelled": 15
    }  # fmt: skip
    assert len(kind.stopped) == 5  # the kind was asked to stop what was in flight
    kind.decide = lambda _t: Outcome("cancelled")
    done = await rounds(eng, made["id"])
    assert done["counts"]["cancelled"] == 20
    with pytest.raises(Conflict):
        await rt.rollouts.cancel(ADMIN, made["id"])


class Later(SystemClock):
    """The system's time, moved on by `offset_s`."""

    offset_s = 0.0

    def now_us(self) -> int:
        return super().now_us() + round(self.offset_s * 1_000_000)


async def test_timeouts_count_as_failures(rt: Runtime) -> None:
    await fleet(rt, 3)
    kind = ScriptedKind(lambda _t: None)
    rt.rollouts.kinds.register(kind)
    later = Later()
    eng = RolloutEngine(rt.rollouts, rt.journal, rt.signal, clock=later)
    made = await rt.rollouts.create(ADMIN, spec(timeout=5))
    await eng.run_once(later.now_us())
    await eng.run_once(later.now_us())
    assert (await rt.rollouts.get(made["id"]))["counts"]["in_flight"] == 3
    later.offset_s = 6
    await eng.run_once(later.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["counts"]["failed"] == 3 and got["counts"]["in_flight"] == 0
    assert len(kind.stopped) == 3
    things = await rt.rollouts.things(made["id"], status="failed")
    assert {t["outcome"]["code"] for t in things} == {"timeout"}


async def test_a_continuous_rollout_takes_in_a_thing_made_later(rt: Runtime) -> None:
    await fleet(rt, 5)
    rt.rollouts.kinds.register(ScriptedKind())
    later = Later()
    eng = RolloutEngine(rt.rollouts, rt.journal, rt.signal, clock=later)
    made = await rt.rollouts.create(ADMIN, spec(continuous=True))
    for _ in range(3):
        await eng.run_once(eng.clock.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["status"] == "running" and got["counts"]["succeeded"] == 5
    await fleet(rt, 1, prefix="late")
    later.offset_s = ENROLL_EVERY_S  # the next look for Things that joined is due
    for _ in range(3):
        await eng.run_once(later.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["counts"]["succeeded"] == 6 and got["status"] == "running"


async def test_a_new_engine_after_a_stop_mid_wave_neither_repeats_nor_skips(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url)
    kind = ScriptedKind(lambda _t: None)
    first = await open_runtime(settings)
    try:
        await fleet(first, 50)
        eng = engine(first, kind)
        made = await first.rollouts.create(
            ADMIN, spec(waves=[{"count": 10}, {"count": 40}], max_in_flight=15)
        )
        kind.decide = lambda _t: Outcome("succeeded")
        for _ in range(3):
            await eng.run_once(eng.clock.now_us())
        kind.decide = lambda _t: None
        await eng.run_once(eng.clock.now_us())
        mid = await first.rollouts.get(made["id"])
        assert mid["waves"][1]["counts"]["in_flight"] > 0
    finally:
        await first.store.dispose()
    second = await open_runtime(settings)
    try:
        kind.decide = lambda _t: Outcome("succeeded")
        done = await rounds(engine(second, kind), made["id"])
        assert done["status"] == "succeeded" and done["counts"]["succeeded"] == 50
        started = await starts(second, made["id"])
        assert len(started) == 50 and set(started.values()) == {1}
    finally:
        await second.store.dispose()


async def test_a_continuous_rollout_over_no_thing_yet_opens_its_wave_when_one_joins(
    rt: Runtime,
) -> None:
    rt.rollouts.kinds.register(ScriptedKind())
    later = Later()
    eng = RolloutEngine(rt.rollouts, rt.journal, rt.signal, clock=later)
    made = await rt.rollouts.create(ADMIN, spec(continuous=True))
    assert made["total"] == 0 and made["waves"] == []
    await eng.run_once(later.now_us())
    assert (await rt.rollouts.get(made["id"]))["status"] == "running"
    await fleet(rt, 2)
    later.offset_s = ENROLL_EVERY_S
    for _ in range(3):
        await eng.run_once(later.now_us())
    got = await rt.rollouts.get(made["id"])
    assert got["counts"]["succeeded"] == 2 and got["waves"][0]["size"] == 2
    events = await rt.journal.feed(0, 1000, None, None, ["rollout"])
    assert [e["type"] for e in events] == [
        "rollout_created", "rollout_status_changed", "rollout_wave_started"
    ]  # fmt: skip
