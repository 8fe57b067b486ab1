"""What the embedded broker asks iotas: who may connect, subscribe and publish, and what to
do with a device's message before it is acknowledged.

The broker is amqtt in this process; the gate is the only thing it knows of iotas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from iotas.adapters.mqtt import topics
from iotas.adapters.mqtt.flood import FloodGuard
from iotas.adapters.mqtt.ingest import DeviceMessages
from iotas.broker import provisioning
from iotas.broker.provisioning import MqttProvisioning
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import check_thing_id
from iotas.services.auth import Authenticator
from iotas.services.ca import thing_of_certificate
from iotas.services.context import Actor, Context
from iotas.services.credentials import CredentialService
from iotas.services.registry import Registry
from iotas.services.stats import IngestStats

log = logging.getLogger("iotas.broker")


# Logins from one source address checked at once; more wait their turn. A source with a
# clean record reserves nothing up front (decision 42), so without this a guesser's first
# wave could queue thousands of password hashes before its first failure was counted.
LOGINS_AT_ONCE_PER_SOURCE = 32


@dataclass(slots=True)
class _Turns:
    """A source's logins being checked (at most the gate's value) or waiting."""

    gate: asyncio.Semaphore
    users: int = 0


class BrokerGate:
    def __init__(
        self,
        *,
        credentials: CredentialService,
        messages: DeviceMessages,
        registry: Registry,
        stats: IngestStats,
        flood: FloodGuard | None = None,
        provisioning: MqttProvisioning | None = None,
        logins: Authenticator | None = None,
    ) -> None:
        # Failed logins limited per source address and user name (decision 48).
        self.logins = logins
        self._checking: dict[str, _Turns] = {}
        # The last presence change of each device not yet recorded.
        self._presence: dict[str, asyncio.Task[None]] = {}
        self.credentials = credentials
        self.messages = messages
        self.registry = registry
        self.stats = stats
        self.flood = flood
        # Claim logins (user name `claim`): devices provisioning themselves; see provisioning.py.
        self.provisioning = provisioning
        # Told of a device that subscribed to its invocations (the MQTT action dispatcher).
        self.on_actions_subscribed: Callable[[str], None] | None = None

    async def authenticate(
        self,
        client_id: str | None,
        username: str | None,
        password: str | None,
        source: str = "-",
    ) -> bool:
        """A device logs in with its Thing id as client id and username and its secret."""
        check = self._check_password(client_id, username, password)
        return await self._limited(source, check, username) is not None

    async def authenticate_certificate(
        self, client_id: str | None, username: str | None, certificate_pem: str, source: str = "-"
    ) -> str | None:
        """A device on the TLS listener: its Thing id, or None (refused)."""
        check = self._check_certificate(client_id, username, certificate_pem)
        return await self._limited(source, check, username)

    async def _limited(
        self, source: str, check: Coroutine[Any, Any, str | None], username: str | None = None
    ) -> str | None:
        """Run a login check unless `source` failed too often as `username` or as a whole
        (then refused before any hash is spent); its outcome counts against both."""
        if self.logins is None:
            return await check
        turns = self._checking.get(source)
        if turns is None:
            turns = self._checking[source] = _Turns(asyncio.Semaphore(LOGINS_AT_ONCE_PER_SOURCE))
        turns.users += 1
        try:
            try:
                await turns.gate.acquire()
            except BaseException:
                check.close()  # cancelled while waiting its turn
                raise
            try:
                taken = self.logins.reserve(source, username)
                if taken is None:
                    check.close()
                    self.stats.reject(
                        "login_rate_limited", f"too many failed logins from {source}", source=source
                    )
                    return None
                thing_id = await check
                self.logins.settle(taken, thing_id is not None, "mqtt")
                return thing_id
            finally:
                turns.gate.release()
        finally:
            turns.users -= 1
            if not turns.users:
                del self._checking[source]

    async def _check_password(
        self, client_id: str | None, username: str | None, password: str | None
    ) -> str | None:
        if not username or password is None:
            self.stats.reject("auth_failed", "no username or password", source=client_id or "?")
            return None
        if client_id != username:
            self.stats.reject(
                "auth_failed", f"client id {client_id!r} is not the username", source=username
            )
            return None
        try:
            check_thing_id(username)
        except InvalidInput:
            self.stats.reject("auth_failed", "the username is not a Thing id", source=username)
            return None
        if not await self.credentials.verify_password(username, password):
            self.stats.reject("auth_failed", "wrong or revoked secret", source=username)
            return None
        return username

    async def _check_certificate(
        self, client_id: str | None, username: str | None, certificate_pem: str
    ) -> str | None:
        """A device on the TLS listener: its certificate (already verified against the CA)
        names its Thing; the certificate must be one of that Thing's active credentials and
        the client id that Thing's id. Returns the Thing id, or None (refused, counted)."""
        identity = thing_of_certificate(certificate_pem)
        if identity is None:
            self.stats.reject("auth_failed", "unreadable client certificate", source="?")
            return None
        thing_id, fingerprint = identity
        if client_id != thing_id or username not in (None, "", thing_id):
            self.stats.reject(
                "auth_failed",
                f"client id {client_id!r} / user {username!r} is not the certificate's Thing",
                source=thing_id,
            )
            return None
        if not await self.credentials.verify_certificate(thing_id, fingerprint):
            self.stats.reject(
                "auth_failed", "revoked, replaced or unknown certificate", source=thing_id
            )
            return None
        return thing_id

    @staticmethod
    def owns(username: str | None, topic: str) -> bool:
        """A device reaches only its own `things/<id>/...` (its id is a literal level, so no
        wildcard after it can reach another Thing's topics)."""
        if provisioning.is_claim_session(username):
            assert username is not None
            return provisioning.owns(username, topic)
        return username is not None and topic.startswith(f"{topics.PREFIX}/{username}/")

    def may_use(self, username: str | None, topic: str, action: str) -> bool:
        """`owns`, counting and logging a refusal (once per refused packet: the broker asks
        again about a PUBLISH that `take` already refused, and that must not count twice)."""
        allowed = self.owns(username, topic)
        if not allowed:
            self.stats.reject(
                "acl_denied", f"{action} on {topic[:200]!r} refused", source=username or "?"
            )
        return allowed

    def subscribed(self, username: str | None, topic_filter: str) -> None:
        """A subscription was made: a device that now takes its invocations is sent them."""
        hook = self.on_actions_subscribed
        if hook is None or username is None or provisioning.is_claim_session(username):
            return
        if topic_filter in topics.action_filters(username):
            hook(username)

    async def take(self, username: str | None, topic: str, payload: bytes, qos: int = 1) -> None:
        """A device published: returns once it is committed (or refused and counted). Past
        the device's budget (see `adapters/mqtt/flood.py`) QoS 0 is refused and QoS 1 and 2
        wait their turn, which holds back that device's connection only."""
        if username is None or not self.may_use(username, topic, "publish"):
            return
        if self.flood is not None:
            now = time.monotonic()
            if qos == 0:
                if not self.flood.allow(username, now):
                    self.stats.reject(
                        "rate_limited", f"over {self.flood.rate:g} messages/s", source=username
                    )
                    return
            elif (wait := self.flood.reserve(username, now)) > 0:
                self.stats.throttled += 1
                await asyncio.sleep(wait)
        if provisioning.is_claim_session(username):  # a device provisioning itself by claim
            if self.provisioning is not None:
                await self.provisioning.handle(username, topic, payload)
            return
        await self.messages.handle(topic, payload, sender=username)

    def presence_changed(self, username: str | None, connected: bool) -> None:
        """The broker knows exactly when a device connects and drops; that is presence. Each
        change is recorded after the device's previous one, so a drop and a reconnect (or a
        session taken over) a moment apart never end up recorded the other way round."""
        if username is None or provisioning.is_claim_session(username):
            return
        previous = self._presence.get(username)
        task = asyncio.create_task(self._presence_after(previous, username, connected))
        self._presence[username] = task
        task.add_done_callback(lambda done: self._presence_done(username, done))

    async def _presence_after(
        self, previous: asyncio.Task[None] | None, username: str, connected: bool
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self.presence(username, connected)

    def _presence_done(self, username: str, done: asyncio.Task[None]) -> None:
        if self._presence.get(username) is done:
            del self._presence[username]

    async def presence_settled(self) -> None:
        """Wait until every presence change so far is recorded (or has failed, logged)."""
        while self._presence:
            await asyncio.wait(list(self._presence.values()))

    async def presence(self, username: str | None, connected: bool) -> None:
        """Record a device's presence now (`presence_changed` keeps the order)."""
        if username is None or provisioning.is_claim_session(username):
            return
        ctx = Context(
            Actor(username, role="device"), "mqtt connect" if connected else "mqtt disconnect"
        )
        try:
            await self.registry.set_connected(ctx, username, connected)
        except NotFound:  # deleted while connected: nothing to record
            log.info("presence of %s not recorded: the Thing no longer exists", username)
        except Exception:  # the database away: log only
            log.exception("could not record presence of %s", username)
