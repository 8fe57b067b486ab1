"""`iotas rollouts create|ls|get|pause|resume|cancel|watch` and `Client.rollouts` against a
real `iotas up`: a rollout of an action over four Things, two at a time; nothing answers, so
it is paused, resumed and cancelled, and `watch` ends once its invocations are cancelled."""

from __future__ import annotations

import asyncio
import json
import secrets

from e2e.e2e_server import ServerProcess
from e2e.test_cli import iotas, live, ok_json
from iotas.sdk.client import Client
from rollout_support import MODEL

__all__ = ["live"]  # the module-scoped server fixture, shared with test_cli.py


async def _things(live: ServerProcess, namespace: str) -> None:
    async with Client(live.url, live.token) as client:
        for i in range(4):
            await client.create_thing(
                f"{namespace}:m-{i}", "meter", attributes={"batch": namespace}, description=MODEL
            )


def test_rollouts_from_the_cli(live: ServerProcess) -> None:
    namespace = f"ro{secrets.token_hex(3)}"
    asyncio.run(_things(live, namespace))
    made = ok_json(
        iotas(
            live,
            "rollouts",
            "create",
            "--name",
            "reboot batch",
            "--target",
            f'attributes.batch == "{namespace}"',
            "--action",
            "reboot",
            "--ttl",
            "600",
            "--wave",
            "50%",
            "--max-in-flight",
            "2",
            "--fail-percent",
            "50",
            "--min-executed",
            "2",
            "--window",
            "00:00-23:59@UTC",
            "--json",
        )
    )
    rollout_id = made["id"]
    assert made["status"] == "running" and made["total"] == 4
    assert made["spec"]["failure_threshold"] == {"percent": 50.0, "min_executed": 2}
    assert made["spec"]["change"] == {
        "type": "action",
        "action": "reboot",
        "input": None,
        "ttl": 600.0,
    }

    table = iotas(live, "rollouts", "ls")
    assert table.exit_code == 0 and rollout_id in table.stdout
    listed = ok_json(iotas(live, "rollouts", "ls", "--status", "running", "--json"))
    assert rollout_id in [r["id"] for r in listed]

    paused = iotas(live, "rollouts", "pause", rollout_id, "--cause", "look first")
    assert paused.exit_code == 0 and "paused" in paused.stderr + paused.stdout
    again = iotas(live, "rollouts", "pause", rollout_id)
    assert again.exit_code != 0
    assert ok_json(iotas(live, "rollouts", "resume", rollout_id, "--json"))["status"] == "running"
    got = ok_json(iotas(live, "rollouts", "get", rollout_id, "--json"))
    assert [w["size"] for w in got["waves"]] == [2, 2]
    assert ok_json(iotas(live, "rollouts", "cancel", rollout_id, "--json"))["status"] == "cancelled"

    watched = iotas(live, "rollouts", "watch", rollout_id, "--every", "0.2", "--json")
    assert watched.exit_code == 0, watched.output
    last = json.loads(watched.stdout.strip().splitlines()[-1])
    assert last["status"] == "cancelled" and last["counts"]["in_flight"] == 0
    drawn = iotas(live, "rollouts", "watch", rollout_id)
    assert drawn.exit_code == 0 and "wave 0" in drawn.stdout

    async def sdk() -> None:
        async with Client(live.url, live.token) as client:
            found = await client.rollouts.get(rollout_id)
            assert found["status"] == "cancelled"
            page = await client.rollouts.things(rollout_id, status="cancelled")
            assert len(page.items) == 4 - found["counts"]["succeeded"] - found["counts"]["failed"]
            listed = await client.rollouts.list(status=["cancelled"])
            assert rollout_id in [r["id"] for r in listed.items]

    asyncio.run(sdk())
