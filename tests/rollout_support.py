"""Rollouts in tests: a change kind whose outcomes the test decides, a fleet to roll out to,
and a wait for a rollout's status.

`ScriptedKind` starts its change by journaling a Thing event (`rollout-test`) in the
engine's unit, so the journal shows how many times each Thing was started, whatever happens
to the process; its outcomes come from `decide(thing_id)` (None: still going).
The end-to-end version drives the `action` kind with simulated devices instead; `fleet`
and `wait_status` serve both.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from iotas.domain import journal as ev
from iotas.domain.errors import InvalidInput
from iotas.domain.things import Thing
from iotas.runtime import Runtime
from iotas.services import changes
from iotas.services.context import Actor, Context
from iotas.services.rollout_kinds import Outcome
from iotas.store.rollouts_repo import RolloutRow
from iotas.store.store import WriteTx

EVENT = "rollout-test"
ADMIN = Context(Actor("test"), "a test")


class ScriptedKind:
    name = "test"
    journal_kind: str | None = None

    def __init__(self, decide: Callable[[str], Outcome | None] | None = None) -> None:
        self.decide = decide or (lambda _thing_id: Outcome("succeeded"))
        self.stopped: list[str] = []

    def validate(self, change: object) -> dict[str, Any]:
        if not isinstance(change, dict) or set(change) - {"type", "note"}:
            raise InvalidInput("a test change is {type, note?}", field="change")
        return dict(change)

    def start_in(
        self, tx: WriteTx, ctx: Context, rollout: RolloutRow, thing: Thing, now_us: int
    ) -> str:
        patch = {"name": EVENT, "data": rollout.id}
        changes.change(tx, ctx, thing, thing.id, ev.THING_EVENT, patch)
        return f"{thing.id}@{rollout.id}"

    async def observe(self, refs: list[str]) -> dict[str, Outcome]:
        found: dict[str, Outcome] = {}
        for ref in refs:
            outcome = self.decide(ref.split("@", 1)[0])
            if outcome is not None:
                found[ref] = outcome
        return found

    async def stop(self, ctx: Context, refs: list[str]) -> None:
        self.stopped += refs


def failing(ids: set[str]) -> Callable[[str], Outcome | None]:
    """Outcomes: these Things fail, the others succeed."""

    def decide(thing_id: str) -> Outcome | None:
        if thing_id in ids:
            return Outcome("failed", {"code": "test", "message": "told to fail"})
        return Outcome("succeeded")

    return decide


# A Thing Model with the actions the `action` kind's tests invoke.
MODEL: dict[str, Any] = {
    "actions": {
        "reboot": {},
        "dim": {"input": {"type": "object", "properties": {"level": {"type": "integer"}}}},
    }
}


async def fleet(
    rt: Runtime, count: int, *, prefix: str = "meter", site: str = "plant-7"
) -> list[str]:
    """`count` Things `acme:{prefix}-{i:05d}` at `site` described by `MODEL`, made in units
    of 500."""
    ids = [f"acme:{prefix}-{i:05d}" for i in range(count)]
    record = {
        "kind": "meter",
        "attributes": {"site": site},
        "labels": {},
        "links": [],
        "description": MODEL,
    }

    def unit(tx: WriteTx, chunk: list[str]) -> None:
        for thing_id in chunk:
            changes.change(tx, ADMIN, None, thing_id, ev.THING_CREATED, record)

    for start in range(0, count, 500):
        chunk = ids[start : start + 500]
        await rt.store.write(lambda tx, chunk=chunk: unit(tx, chunk))  # type: ignore[misc]
    return ids


async def starts(rt: Runtime, rollout_id: str) -> dict[str, int]:
    """How many times the scripted kind started each Thing (from the journal)."""
    seen: dict[str, int] = {}
    after = 0
    while True:
        events = await rt.journal.feed(after, 5000, [ev.THING_EVENT])
        if not events:
            return seen
        after = events[-1]["seq"]
        for event in events:
            patch = event.get("patch") or {}
            if patch.get("name") == EVENT and patch.get("data") == rollout_id:
                thing_id = str(event["thing_id"])
                seen[thing_id] = seen.get(thing_id, 0) + 1


async def wait_for(
    check: Callable[[], Awaitable[dict[str, Any]]],
    until: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Poll `check` until `until` holds of its answer (bounded); the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await check()
        if until(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {seen}")
        await asyncio.sleep(0.02)


async def wait_status(
    get: Callable[[], Awaitable[dict[str, Any]]], *statuses: str, timeout: float = 30.0
) -> dict[str, Any]:
    """The rollout once its status is one of `statuses`."""
    return await wait_for(get, lambda r: r["status"] in statuses, timeout=timeout)


DEVICE = Context(Actor("device", role="device"), "a simulated device")


async def answer(rt: Runtime, rollout_id: str, failing: set[str]) -> int:
    """Play the devices of a rollout's `action` change once: every invocation of it not
    answered yet gets its result (failed for the Things in `failing`). How many answered."""
    from iotas.domain.invocations import Status

    waiting = await rt.invocations.list(
        rollout_id=rollout_id, status=[Status.QUEUED, Status.DELIVERED], limit=1000
    )
    failed = {"status": "failed", "error": {"code": "test", "message": "told to fail"}}
    succeeded = {"status": "succeeded", "output": {"ok": True}}
    await asyncio.gather(
        *(
            rt.invocations.report(
                DEVICE, i.thing_id, i.id, failed if i.thing_id in failing else succeeded
            )
            for i in waiting
        )
    )
    return len(waiting)


# The judged scenario: 10 % of the Things fail the action, and the rollout halts at
# its failure threshold in its second wave without touching the third. With waves of 10 %,
# 30 % and 60 %, a success threshold of 80 % and a failure threshold of 9 % of at least 40 %
# of the first two waves' Things, 10 % failing cannot halt the first wave (too few have
# finished) and does halt the second.
def halting_spec(target: str, change: dict[str, Any], things: int) -> dict[str, Any]:
    return {
        "name": "halts in its second wave",
        "target": target,
        "change": change,
        "waves": [{"percent": 10}, {"percent": 30}, {"percent": 60}],
        "success_threshold": {"percent": 80},
        "failure_threshold": {"percent": 9, "min_executed": max(things // 5, 1)},
    }


def failing_per_wave(members: list[dict[str, Any]], fraction: float = 0.1) -> set[str]:
    """`fraction` of each wave's Things (its first ones in rollout order), from the rollout's
    `things` list: the Things a test makes fail."""
    failing: set[str] = set()
    for wave in {t["wave"] for t in members}:
        of_wave = [t["thing"] for t in members if t["wave"] == wave]
        failing |= set(of_wave[: int(len(of_wave) * fraction)])
    return failing


def check_halted_in_wave_two(
    rollout: dict[str, Any], members: list[dict[str, Any]], invoked: set[str]
) -> None:
    """The rollout halted at its failure threshold in its second wave, and none of the third
    wave's Things (of `members`, its `things` list) is among the Things `invoked`."""
    assert rollout["status"] == "halted", rollout
    assert rollout["reason"] == "failure_threshold", rollout
    first, second, third = rollout["waves"][:3]
    assert first["counts"]["pending"] == 0 and first["counts"]["in_flight"] == 0
    assert second["opens"] is not None and second["counts"]["failed"] > 0
    assert third["opens"] is None and third["counts"]["pending"] == third["size"]
    assert not {t["thing"] for t in members if t["wave"] == 2} & invoked
