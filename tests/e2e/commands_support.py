"""What the end-to-end tests of commands (issue 15) share: a real `iotas up` that can be
killed with SIGKILL and started again on the same data directory and ports, a fleet of
Things seeded into its database before it starts, and device-SDK devices in this process
that count every call of their handlers.

Seeding writes the Things and their MQTT passwords with the services, in units of 250,
into the data directory the server then opens: through the API, 1,000 Things and 1,000
credentials take a minute on this loaded machine, which would leave no time for what the
tests judge (delivery and rollouts, all of which go through the real server).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from e2e.e2e_server import clean_env, stop, wait_healthy
from iotas.domain import journal as ev
from iotas.runtime import open_runtime
from iotas.sdk import Device
from iotas.services import changes
from iotas.services.context import Actor, Context
from iotas.services.credentials import NewCredential, add_in
from iotas.settings import Settings
from iotas.sim.actions import ActionBehaviour, answer_actions
from iotas.store.store import WriteTx
from support import free_port

SEEDER = Context(Actor("e2e-seed"), "seeded by the test")
SEED_UNIT = 250

# The actions the tests invoke: `step` carries a number that names the invocation to the
# device (its handler cannot see the invocation id), `ping` takes nothing.
MODEL: dict[str, Any] = {
    "actions": {
        "step": {
            "input": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            }
        },
        "ping": {},
    }
}


async def seed(
    data_dir: Path,
    things: dict[str, dict[str, Any]],
    *,
    description: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Create the Things (id -> attributes), each described by `description` (default
    MODEL) with a password credential, in `data_dir`'s database; their secrets by id."""
    rt = await open_runtime(Settings(data_dir=data_dir))
    secrets: dict[str, str] = {}
    ids = list(things)
    try:
        for start in range(0, len(ids), SEED_UNIT):
            chunk = ids[start : start + SEED_UNIT]
            made = {t: await rt.credentials.prepare(t, {"type": "password"}) for t in chunk}

            def unit(tx: WriteTx, chunk: list[str], made: dict[str, NewCredential]) -> None:
                for thing_id in chunk:
                    record = {
                        "kind": "sensor",
                        "attributes": things[thing_id],
                        "labels": {},
                        "links": [],
                        "description": description or MODEL,
                    }
                    changes.change(tx, SEEDER, None, thing_id, ev.THING_CREATED, record)
                    add_in(tx, SEEDER, tx.existing(thing_id), made[thing_id])

            await rt.store.write(lambda tx, c=chunk, m=made: unit(tx, c, m))  # type: ignore[misc]
            secrets.update({t: str(made[t].shown_once["secret"]) for t in chunk})
    finally:
        await rt.store.dispose()
    return secrets


@dataclass
class Node:
    """`iotas up` with the embedded broker on fixed ports, so a restart on the same data
    directory is the same server to its devices (they reconnect by themselves)."""

    workdir: Path
    token: str = "iotas_e2e_commands_token"
    port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def log_path(self) -> Path:
        return self.workdir / f"server-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with self.log_path().open("wb") as log:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "iotas", "up", "--port", str(self.port)),
                    *("--data-dir", str(self.data_dir), "--mqtt-port", str(self.mqtt_port)),
                    *("--mqtts-port", str(free_port())),
                ],
                env=clean_env(IOTAS_ADMIN_TOKEN=self.token),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_healthy(self.url, self.process, self.log_path())

    def kill(self) -> None:
        """SIGKILL: nothing is let go in good order."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def output(self) -> str:
        return "\n".join(
            (self.workdir / f"server-{n}.log").read_text(errors="replace")
            for n in range(1, self.starts + 1)
        )


@contextmanager
def node(workdir: Path) -> Iterator[Node]:
    running = Node(workdir)
    try:
        yield running
    finally:
        running.stop()


def api(node: Node) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=node.url, headers=node.headers, timeout=30)


async def invoke(
    client: httpx.AsyncClient, thing_id: str, action: str, input: Any, ttl: float
) -> dict[str, Any]:
    answer = await client.post(
        f"/api/v1/things/{thing_id}/actions/{action}", json={"input": input, "ttl": ttl}
    )
    assert answer.status_code == 202, answer.text
    made: dict[str, Any] = answer.json()
    assert made["status"] == "queued", made
    return made


async def invocation(client: httpx.AsyncClient, invocation_id: str, wait: float = 0) -> Any:
    answer = await client.get(f"/api/v1/invocations/{invocation_id}", params={"wait": wait})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def every_invocation(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    """All invocations matching `params` (thing, status, rollout), page after page."""
    return await _pages(client, "/api/v1/invocations", params, "after")


async def _pages(
    client: httpx.AsyncClient, path: str, params: dict[str, str], cursor: str
) -> list[dict[str, Any]]:
    """Every item of a listing, page after page (`cursor`: the query parameter that takes
    the previous page's `next`: `after` for invocations, `cursor` for rollouts)."""
    found: list[dict[str, Any]] = []
    following: dict[str, str] = {}
    while True:
        answer = await client.get(path, params={**params, "limit": "1000", **following})
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found += page["items"]
        if page["next"] is None:
            return found
        following = {cursor: page["next"]}


async def until(
    check: Callable[[], Awaitable[Any]],
    what: str,
    timeout: float,
    every: float = 0.1,
    state: Callable[[], Awaitable[Any]] | None = None,
) -> Any:
    """`check()`'s first truthy answer, polled (fails after `timeout` seconds, saying what
    `state()` answers then)."""
    deadline = time.monotonic() + timeout
    while True:
        seen = await check()
        if seen:
            return seen
        if time.monotonic() > deadline:
            shown = "" if state is None else f"; at the end: {await state()}"
            raise AssertionError(f"{what}: not within {timeout} s{shown}")
        await asyncio.sleep(every)


Handler = Callable[[str, Any], Awaitable[Any]]


@dataclass
class Devices:
    """SDK devices in this process; every call of a handler is counted (by the Thing and
    the key the handler names: for `step`, the input's n)."""

    mqtt_url: str
    secrets: dict[str, str]
    devices: dict[str, Device] = field(default_factory=dict)
    calls: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def add(self, thing_ids: Iterable[str], handlers: dict[str, Handler]) -> None:
        for thing_id in thing_ids:
            device = self._device(thing_id)
            for name, handle in handlers.items():
                device.on_action(name)(self._counted(thing_id, name, handle))

    def simulated(self, thing_ids: Iterable[str], behaviour: ActionBehaviour, seed: str) -> None:
        """Devices answering as `iotas simulate`'s do (sim.actions: its Thing Model's
        actions, a share failing, drawn from a generator per device seeded from `seed`).
        The SDK counts what reached them (`received`)."""
        for thing_id in thing_ids:
            rng = random.Random(f"{seed}/{thing_id}")
            answer_actions(self._device(thing_id), behaviour, rng)

    def received(self, thing_id: str) -> int:
        return self.devices[thing_id].actions.stats.received

    def _device(self, thing_id: str) -> Device:
        device = Device(
            thing_id,
            self.secrets[thing_id],
            url=self.mqtt_url,
            follow_desired=False,
            backoff_initial=0.2,
            backoff_max=1.0,
        )
        self.devices[thing_id] = device
        return device

    def _counted(self, thing_id: str, name: str, handle: Handler) -> Any:
        async def handler(value: Any, progress: Any) -> Any:
            self.calls[thing_id].append(value["n"] if name == "step" else name)
            return await handle(thing_id, value)

        return handler

    async def connect(self, thing_ids: Iterable[str], *, at_once: int = 100) -> None:
        limit = asyncio.Semaphore(at_once)

        async def one(device: Device) -> None:
            async with limit:
                await device.connect(give_up_after=120)

        await asyncio.gather(*(one(self.devices[t]) for t in thing_ids))

    async def close(self) -> None:
        await asyncio.gather(
            *(d.close(grace=1.0) for d in self.devices.values()), return_exceptions=True
        )


async def start_rollout(client: httpx.AsyncClient, **spec: Any) -> str:
    """Create a rollout (201); its id."""
    created = await client.post("/api/v1/rollouts", json=spec)
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def rollout(client: httpx.AsyncClient, rollout_id: str) -> dict[str, Any]:
    answer = await client.get(f"/api/v1/rollouts/{rollout_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def rollout_things(client: httpx.AsyncClient, rollout_id: str) -> list[dict[str, Any]]:
    """The rollout's Things (thing, wave, status, ref...) in rollout order, every page."""
    return await _pages(client, f"/api/v1/rollouts/{rollout_id}/things", {}, "cursor")
