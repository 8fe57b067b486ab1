"""amqtt plugins that ask the `BrokerGate`. amqtt creates them from class paths; the gate
arrives through each plugin's Config (amqtt fills it with dacite, which accepts Any)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session


class IotasAuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        gate: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        gate = self.context.config.gate
        return bool(await gate.authenticate(session.client_id, session.username, session.password))


class IotasTopicPlugin(BaseTopicPlugin):
    @dataclass
    class Config:
        gate: Any = None

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or topic is None:
            return False
        gate = self.context.config.gate
        if action == Action.SUBSCRIBE:
            return bool(gate.may_use(session.username, topic, "subscribe"))
        # A device's PUBLISH was refused and counted by `BrokerGate.take` before the broker
        # asks here; RECEIVE is for subscriptions already checked. Neither counts again.
        return bool(gate.owns(session.username, topic))


class IotasPresencePlugin(BasePlugin[Any]):
    @dataclass
    class Config:
        gate: Any = None

    async def on_broker_client_connected(self, *, client_id: str, client_session: Session) -> None:
        await self.context.config.gate.presence(client_session.username, True)

    async def on_broker_client_disconnected(
        self, *, client_id: str, client_session: Session
    ) -> None:
        await self.context.config.gate.presence(client_session.username, False)
