"""The MQTT adapter: how devices reach iotas over MQTT, through the embedded broker (`broker/`)
or with iotas as a client of an external one. `setup` builds it for the runtime's table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from iotas.adapters.mqtt import topics
from iotas.adapters.mqtt.actions import DISPATCHER, Dispatcher, message
from iotas.adapters.mqtt.adapter import BrokerAddress, MqttAdapter
from iotas.adapters.mqtt.desired import mirror_desired, publish_all_desired
from iotas.adapters.mqtt.flood import FloodGuard
from iotas.adapters.mqtt.ingest import DeviceMessages
from iotas.broker.embedded import EmbeddedBroker, TlsListener
from iotas.broker.gate import BrokerGate
from iotas.broker.provisioning import MqttProvisioning
from iotas.controllers.supervisor import Controllers, Loop
from iotas.domain.errors import NotFound
from iotas.domain.invocations import Invocation
from iotas.services.bundle import Services
from iotas.services.ca import CA_DIR, tls_files
from iotas.services.context import Actor, Context

log = logging.getLogger("iotas.devices")

SYSTEM = Actor("iotas", role="system")


def setup(services: Services, controllers: Controllers) -> MqttDevices | None:
    settings = services.settings
    if settings.mqtt_url is None and settings.mqtt_port is None:
        return None  # --no-broker and no external broker: devices do not use MQTT
    return MqttDevices(services, controllers)


class MqttDevices:
    """Whatever MQTT transport the settings ask for; `stop()` undoes `start()`."""

    name = "mqtt"
    # Per node: each node's broker (or broker client) and the Things seen through it.
    MIRROR = "mqtt-desired-mirror"

    def __init__(self, rt: Services, controllers: Controllers) -> None:
        self.rt = rt
        self.controllers = controllers
        self.adapter: MqttAdapter | None = None
        self.broker: EmbeddedBroker | None = None
        self._controllers: list[str] = []
        self._messages: DeviceMessages | None = None
        self._cutting: set[asyncio.Task[None]] = set()
        self.dispatcher: Dispatcher | None = None

    async def start(self) -> None:
        rt, settings = self.rt, self.rt.settings
        if settings.mqtt_url is not None:
            self.adapter = MqttAdapter(
                BrokerAddress.parse(settings.mqtt_url),
                registry=rt.registry,
                telemetry=rt.telemetry,
                journal=rt.journal,
                signal=rt.signal,
                stats=rt.stats,
                client_id=settings.mqtt_client_id,
                session_expiry=settings.mqtt_session_expiry,
                max_payload=settings.mqtt_max_payload,
                credentials=rt.credentials,
                results=rt.invocations,
            )
            await self.adapter.start()
            rt.credentials.on_revoked.append(self._cut_off_at_broker)
            await self._dispatch(self._via_broker(self.adapter), self._connected, cluster=True)
            log.info("devices: MQTT via %s", settings.mqtt_url.split("@")[-1])
            return
        if settings.mqtt_port is None:
            return
        messages = DeviceMessages(
            registry=rt.registry,
            telemetry=rt.telemetry,
            stats=rt.stats,
            max_payload=settings.mqtt_max_payload,
            credentials=rt.credentials,
            results=rt.invocations,
        )
        gate = BrokerGate(
            credentials=rt.credentials,
            messages=messages,
            registry=rt.registry,
            stats=rt.stats,
            flood=FloodGuard(settings.mqtt_device_rate, settings.mqtt_device_burst),
            provisioning=MqttProvisioning(rt.claims, rt.stats),
            logins=rt.auth,
        )
        tls = None
        if settings.mqtts_port and rt.credentials.ca is not None:
            certfile, keyfile, cafile = tls_files(
                rt.credentials.ca, settings.data_dir / CA_DIR, [settings.mqtt_host]
            )
            tls = TlsListener(settings.mqtts_port, certfile, keyfile, cafile)
        broker = EmbeddedBroker(gate, host=settings.mqtt_host, port=settings.mqtt_port, tls=tls)
        # No device connection outlives the process that held it: whoever the journal still
        # shows connected (after a crash nothing recorded the drop) is not any more. Before
        # the broker starts, so no new connection is undone.
        stale = await rt.registry.disconnect_all(Context(SYSTEM, "embedded broker started"))
        if stale:
            log.info("devices: %d Things were still marked connected; now disconnected", stale)
        head = await rt.journal.head_seq()
        await broker.start()
        self.broker, self._messages = broker, messages
        messages.reply = broker.publish
        rt.credentials.on_revoked.append(broker.drop)
        # The embedded broker keeps retained messages in memory only: restore desired state.
        await publish_all_desired(rt.registry, broker.publish_retained)
        mirror = Loop(
            self.MIRROR,
            lambda: mirror_desired(
                rt.journal, rt.registry, rt.signal, broker.publish_retained, after=head
            ),
        )
        for controller in (mirror, messages.seen_controller()):
            await self.controllers.start(controller)
            self._controllers.append(controller.name)
        # Each node sends to the devices connected to its own broker.
        await self._dispatch(self._via_embedded(broker), None, cluster=False)
        gate.on_actions_subscribed = self._subscribed
        log.info("devices: embedded MQTT broker on %s:%s", settings.mqtt_host, settings.mqtt_port)
        if tls is not None:
            log.info("devices: MQTT over TLS (client certificates) on port %s", tls.port)

    # -- invocations -----------------------------------------------------------------------

    async def _dispatch(
        self,
        deliver: Callable[[Invocation], Awaitable[bool]],
        reachable: Callable[[str], Awaitable[bool]] | None,
        *,
        cluster: bool,
    ) -> None:
        """Start sending invocations: on an external broker from one node of the cluster
        (two would both send), on embedded brokers from each node to its own devices."""
        rt = self.rt
        dispatcher = Dispatcher(
            rt.invocations,
            rt.journal,
            rt.signal,
            deliver,
            reachable=reachable,
            on_presence=reachable is not None,  # the embedded broker tells of subscriptions
        )
        self.dispatcher = dispatcher
        await self.controllers.start(Loop(DISPATCHER, dispatcher.run, cluster_wide=cluster))
        self._controllers.append(DISPATCHER)
        if self.adapter is not None:
            # After a lost broker connection, what was in flight goes again.
            self.adapter.on_connected = self._broker_back

    @staticmethod
    def _via_embedded(broker: EmbeddedBroker) -> Callable[[Invocation], Awaitable[bool]]:
        async def deliver(invocation: Invocation) -> bool:
            topic, payload = message(invocation)
            return await broker.deliver(invocation.thing_id, topic, payload)

        return deliver

    @staticmethod
    def _via_broker(adapter: MqttAdapter) -> Callable[[Invocation], Awaitable[bool]]:
        async def deliver(invocation: Invocation) -> bool:
            topic, payload = message(invocation)
            return await adapter.deliver(
                topic,
                payload,
                response_topic=topics.result(invocation.thing_id, invocation.action, invocation.id),
                correlation=invocation.id.encode(),
            )

        return deliver

    async def _connected(self, thing_id: str) -> bool:
        """On an external broker a Thing is reachable while its presence says connected."""
        try:
            return (await self.rt.registry.get(thing_id)).connected
        except NotFound:
            return False

    def _subscribed(self, thing_id: str) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake(thing_id, connected=True)

    def _broker_back(self) -> None:
        if self.dispatcher is not None and self.dispatcher.running:
            task = asyncio.create_task(self.dispatcher.wake_all(), name="iotas-actions-resend")
            self._cutting.add(task)
            task.add_done_callback(self._cutting.discard)

    def _cut_off_at_broker(self, thing_id: str) -> None:
        """A revocation, on an external broker: have it drop the Thing's session now (and,
        when nothing is left to log in with, refuse it) rather than at the next
        `iotas broker-config`."""
        task = asyncio.create_task(self._cut_off(thing_id), name=f"iotas-cut-off {thing_id}")
        self._cutting.add(task)
        task.add_done_callback(self._cutting.discard)

    async def _cut_off(self, thing_id: str) -> None:
        adapter = self.adapter
        if adapter is None:
            return
        try:
            for_good = not await self.rt.credentials.has_active(thing_id)
        except Exception:  # the database away: cut it off anyway, it can be let in again
            log.exception("could not read the credentials of %s", thing_id)
            for_good = True
        adapter.cut_off(thing_id, for_good=for_good)

    def health(self) -> dict[str, Any]:
        sent = 0 if self.dispatcher is None else self.dispatcher.sent
        if self.adapter is not None:
            return {
                "mode": "external broker",
                "connected": self.adapter.connected,
                "invocations_sent": sent,
            }
        return {
            "mode": "embedded broker",
            "running": self.broker is not None,
            "invocations_sent": sent,
        }

    async def stop(self) -> None:
        for name in self._controllers:
            await self.controllers.stop(name)
        self._controllers.clear()
        if self.adapter is not None:
            if self._cut_off_at_broker in self.rt.credentials.on_revoked:
                self.rt.credentials.on_revoked.remove(self._cut_off_at_broker)
            await self.adapter.stop()
        if self._messages is not None:
            await self._messages.drain()
        if self.broker is not None:
            if self.broker.drop in self.rt.credentials.on_revoked:
                self.rt.credentials.on_revoked.remove(self.broker.drop)
            await self.broker.stop()
