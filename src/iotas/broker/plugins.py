"""amqtt plugins that ask the `BrokerGate`. amqtt creates them from class paths; the gate
arrives through each plugin's Config (amqtt fills it with dacite, which accepts Any)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from iotas.broker.provisioning import CLAIM_USERNAME


class IotasAuthPlugin(BaseAuthPlugin):
    @dataclass
    class Config:
        gate: Any = None

    async def authenticate(self, *, session: Session) -> bool | None:
        gate = self.context.config.gate
        if session.username == CLAIM_USERNAME:
            # A device provisioning itself by claim (iotas.broker.provisioning); the broker's
            # publish is only reachable from a plugin's context, so it is handed over here.
            claims = gate.provisioning
            return claims is not None and bool(
                await claims.login(session, self.context.broadcast_message)
            )
        source = getattr(session, "iotas_source", "-")
        certificate = getattr(session, "iotas_certificate", None)
        if certificate is not None:
            # The TLS listener: the certificate is the identity, and names the Thing, which
            # then is the session's user name for every topic check.
            thing_id = await gate.authenticate_certificate(
                session.client_id, session.username, certificate, source
            )
            if thing_id is None:
                return False
            session.username = thing_id
            return True
        return bool(
            await gate.authenticate(session.client_id, session.username, session.password, source)
        )


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
