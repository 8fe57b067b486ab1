"""A simulated fleet: many `Device`s in one process, sending telemetry at a fixed total rate.

    async with Client(url, token) as client:
        fleet = Fleet(client, devices=1000, rate=200, mqtt_url="mqtt://127.0.0.1:1883")
        await fleet.provision()          # Things and a password credential each
        stats = await fleet.run(duration=60)

Devices are started gradually (`connect_rate` per second), then one pacer spreads `rate`
telemetry messages per second over all started devices. Devices that are not transmit-only
follow their desired state (a pump's `speed` becomes the target of its speed readings) and
report it back; flaky devices lose their connection at random (without DISCONNECT, so their
last will says "offline") and reconnect with the SDK's backoff.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iotas.sdk import Client
from iotas.sdk.device import DEFAULT_URL, Device
from iotas.sim.actions import ActionBehaviour, answer_actions
from iotas.sim.pacing import Pacer, Rotation, drops_now
from iotas.sim.plan import SimThing, plan_fleet
from iotas.sim.provision import Progress, Provisioned, provision
from iotas.sim.signals import Signals

TICK_MIN = 0.01
TICK_MAX = 0.25
CHAOS_PERIOD = 1.0


@dataclass(frozen=True, slots=True)
class FleetStats:
    devices: int  # in the fleet
    started: int  # connecting or connected so far
    connected: int  # connected now
    submitted: int  # messages the devices were given (telemetry, reports)
    sent: int  # PUBLISH packets written, resends included
    acked: int  # QoS 1 messages acknowledged by the broker
    queued: int  # waiting in device queues for a connection
    dropped: int  # dropped from full device queues
    resent: int  # sent again after a lost connection
    connects: int
    reconnects: int
    connect_failures: int
    drops: int  # connections the simulator cut (flaky devices)
    desired_applied: int  # desired states applied (and reported back)
    actions_received: int  # invocations taken (each once; repeats dropped)
    actions_succeeded: int
    actions_failed: int
    skipped: int  # telemetry not sent because this process fell behind the rate
    elapsed: float  # seconds since run() began

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class SimDevice:
    """One simulated device: its Thing, its MQTT `Device` and its readings."""

    def __init__(
        self,
        thing: SimThing,
        device: Device,
        rng: random.Random,
        actions: ActionBehaviour | None = None,
    ) -> None:
        self.thing = thing
        self.device = device
        self.signals = Signals(thing.kind, rng)
        self.desired_applied = 0
        if not thing.transmit_only:
            device.on_desired(self.apply)
            # Its own generator, drawn after the signals', so telemetry stays as it was.
            answer_actions(device, actions or ActionBehaviour(), random.Random(rng.random()))

    def apply(self, desired: dict[str, Any]) -> dict[str, Any]:
        """Adopt the desired state; the returned patch is reported back by the SDK."""
        self.signals.follow(desired)
        self.desired_applied += 1
        return {k: v for k, v in desired.items() if not k.startswith("$")}


class Fleet:
    """See the module docstring. `client` may be None when the broker lets anyone in and
    nothing is provisioned (devices then connect without a password)."""

    def __init__(
        self,
        client: Client | None,
        *,
        devices: int,
        rate: float,
        namespace: str = "sim",
        mqtt_url: str = DEFAULT_URL,
        transmit_only_share: float = 0.1,
        flaky_share: float = 0.05,
        seed: int | None = None,
        ca_file: str | None = None,
        connect_rate: float = 200.0,
        max_connecting: int = 100,
        mean_uptime: float = 30.0,
        qos: int = 1,
        queue_limit: int = 100,
        keepalive: int = 60,
        action_failure_rate: float = 0.0,
        action_delay: float = 1.0,
    ) -> None:
        if not rate > 0:
            raise ValueError("the rate must be positive")
        if qos not in (0, 1):
            raise ValueError("qos must be 0 or 1")
        self.client = client
        self.things = plan_fleet(
            devices,
            namespace=namespace,
            seed=seed,
            transmit_only_share=transmit_only_share,
            flaky_share=flaky_share,
        )
        self.rate = rate
        self.mqtt_url = mqtt_url
        self.secrets: dict[str, str] = {}
        self.devices: list[SimDevice] = []
        self._flaky: list[SimDevice] = []
        self._rng = random.Random(seed)
        self._ca_file = ca_file
        self._connect_rate = connect_rate
        self._max_connecting = max(1, max_connecting)
        self._mean_uptime = mean_uptime
        self._qos = qos
        self._queue_limit = queue_limit
        self._keepalive = keepalive
        self._actions = ActionBehaviour(action_failure_rate, action_delay)
        self._pacer: Pacer | None = None
        self._first_started = asyncio.Event()
        self._drops = 0
        self._began: float | None = None
        self._loop_time: Callable[[], float] = lambda: 0.0

    async def provision(
        self, *, concurrency: int = 8, progress: Progress | None = None
    ) -> Provisioned:
        """Create the missing Things and a new password credential for every device."""
        if self.client is None:
            raise RuntimeError("provisioning needs an operator Client")
        result = await provision(
            self.client, self.things, concurrency=concurrency, progress=progress
        )
        self.secrets = result.secrets
        return result

    async def run(self, duration: float | None = None, *, grace: float = 2.0) -> FleetStats:
        """Run the fleet for `duration` seconds (None: until cancelled), then close every
        device (each gets `grace` seconds to send what it queued and say "offline")."""
        if self._began is not None:
            raise RuntimeError("a Fleet runs once")
        loop = asyncio.get_running_loop()
        self._loop_time = loop.time
        self._began = loop.time()
        tasks = [
            asyncio.create_task(self._start_devices(), name="sim-start"),
            asyncio.create_task(self._send_telemetry(), name="sim-telemetry"),
            asyncio.create_task(self._flake(), name="sim-flaky"),
        ]
        try:
            async with asyncio.timeout(duration):
                await asyncio.gather(*tasks)
        except TimeoutError:
            pass  # the duration is over
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._close_all(grace)
        return self.stats()

    def stats(self) -> FleetStats:
        totals = dict.fromkeys(
            (
                "submitted",
                "sent",
                "acked",
                "dropped",
                "resent",
                "connects",
                "reconnects",
                "connect_failures",
            ),
            0,
        )
        connected = queued = applied = received = succeeded = failed = 0
        for sim in self.devices:
            device = sim.device
            for key in totals:
                totals[key] += getattr(device.stats, key)
            connected += device.connected
            queued += device.queued
            applied += sim.desired_applied
            received += device.actions.stats.received
            succeeded += device.actions.stats.succeeded
            failed += device.actions.stats.failed
        return FleetStats(
            devices=len(self.things),
            started=len(self.devices),
            connected=connected,
            queued=queued,
            drops=self._drops,
            desired_applied=applied,
            actions_received=received,
            actions_succeeded=succeeded,
            actions_failed=failed,
            skipped=self._pacer.skipped if self._pacer else 0,
            elapsed=0.0 if self._began is None else self._loop_time() - self._began,
            **totals,
        )

    def last_error(self) -> BaseException | None:
        """Why the most recent failed connection attempt of any device failed."""
        for sim in self.devices:
            if sim.device.last_error is not None:
                return sim.device.last_error
        return None

    # -- the three loops -------------------------------------------------------------------

    async def _start_devices(self) -> None:
        """Connect gradually: at most `connect_rate` a second, and no more than
        `max_connecting` handshakes at a time. Without that window a busy process (or
        broker) answers handshakes more slowly than new ones start, they time out, are
        retried, and no more devices get connected at all."""
        loop = asyncio.get_running_loop()
        pacer = Pacer(self._connect_rate, loop.time() - 1 / self._connect_rate)
        waiting = iter(self.things)
        connecting: list[SimDevice] = []
        while True:
            connecting = [sim for sim in connecting if not sim.device.stats.connects]
            room = self._max_connecting - len(connecting)
            for _ in range(min(room, pacer.take(loop.time()))):
                thing = next(waiting, None)
                if thing is None:
                    return
                connecting.append(await self._start(thing))
                self._first_started.set()
            await asyncio.sleep(max(TICK_MIN, pacer.next_at() - loop.time()))

    async def _start(self, thing: SimThing) -> SimDevice:
        device = Device(
            thing.id,
            self.secrets.get(thing.id),
            url=self.mqtt_url,
            ca_file=self._ca_file,
            keepalive=self._keepalive,
            follow_desired=not thing.transmit_only,
            queue_limit=self._queue_limit,
        )
        sim = SimDevice(thing, device, random.Random(self._rng.random()), self._actions)
        self.devices.append(sim)
        if thing.flaky:
            self._flaky.append(sim)
        device.start()
        if not thing.transmit_only:
            # What a device says when it boots; queued until the first connection.
            boot = {"firmware": thing.firmware, "model": thing.attributes["model"]}
            await device.report(boot, wait=False)
        return sim

    async def _send_telemetry(self) -> None:
        await self._first_started.wait()
        loop = asyncio.get_running_loop()
        self._pacer = pacer = Pacer(self.rate, loop.time())
        rotation = Rotation(self.devices, self._rng)
        while True:
            for _ in range(pacer.take(loop.time())):
                sim = rotation.next()
                if sim is not None:
                    await sim.device.telemetry(sim.signals.sample(), qos=self._qos, wait=False)
            await asyncio.sleep(min(TICK_MAX, max(TICK_MIN, pacer.next_at() - loop.time())))

    async def _flake(self) -> None:
        while True:
            await asyncio.sleep(CHAOS_PERIOD)
            for sim in self._flaky:
                if sim.device.connected and drops_now(self._rng, CHAOS_PERIOD, self._mean_uptime):
                    sim.device.drop_connection()
                    self._drops += 1

    async def _close_all(self, grace: float) -> None:
        closing = [sim.device.close(grace=grace) for sim in self.devices]
        try:
            async with asyncio.timeout(grace + 5.0):
                await asyncio.gather(*closing, return_exceptions=True)
        except TimeoutError:
            pass  # each close() released its device when cancelled
