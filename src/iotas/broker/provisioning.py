"""Provisioning by claim over the embedded broker (external brokers: use HTTPS).

A device connects with user name `claim`, its claim token as password and a client id of
its own (1-128 letters, digits, '.', '_', '-': never a Thing id, which has a ':', so a claim
login can never take over a device's session). It may then use only
`provisioning/<client id>/...`: it subscribes to `provisioning/<client id>/response` and
publishes `{"serial", "csr"?}` to `provisioning/<client id>/request`; the answer is what
`POST /api/v1/provision` answers, or `{"error", "status", "detail"}`.

After the login the session's user name becomes `claim/<claim id>/<client id>`: the gate
and the topic checks see only user names, and this one says which claim and which topics,
with no table to keep (or forget) per connection. The claim is checked again, in the
provisioning transaction, for every request: a claim revoked after the login provisions
nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson

from iotas.domain.errors import InvalidInput, IotasError
from iotas.services.claims import ClaimService
from iotas.services.stats import IngestStats

log = logging.getLogger("iotas.broker")

CLAIM_USERNAME: Final = "claim"
SESSION_PREFIX: Final = "claim/"
TOPIC_PREFIX: Final = "provisioning"
CLIENT_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# A serial and a CSR (at most 16 KiB) in JSON, with room to spare.
MAX_REQUEST: Final = 64 * 1024
WILDCARD_HOSTS: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 (compared, not bound)

Publish = Callable[[str, bytes, int], Awaitable[None]]


def is_claim_session(username: str | None) -> bool:
    return username is not None and username.startswith(SESSION_PREFIX)


def _parts(username: str) -> tuple[str, str]:
    claim_id, _, client_id = username.removeprefix(SESSION_PREFIX).partition("/")
    return claim_id, client_id


def owns(username: str, topic: str) -> bool:
    """A claim login reaches `provisioning/<its client id>/...` only (the client id is a
    literal level without wildcards, so no filter after it reaches another client's)."""
    _claim, client_id = _parts(username)
    return bool(client_id) and topic.startswith(f"{TOPIC_PREFIX}/{client_id}/")


class MqttProvisioning:
    def __init__(self, claims: ClaimService, stats: IngestStats) -> None:
        self.claims = claims
        self.stats = stats
        # The broker's own publish, which amqtt hands its plugins only: set at the first login.
        self._publish: Publish | None = None

    async def login(self, session: Any, publish: Publish) -> bool:
        """Check a claim login (amqtt's session: client id, password, remote address) under
        the API's per-source failure limit; on success the session is renamed (see above)."""
        client_id = session.client_id
        claim_id = await self.claim_of(client_id, session.password, session.remote_address or "-")
        if claim_id is None:
            return False
        self._publish = publish
        session.username = f"{SESSION_PREFIX}{claim_id}/{client_id}"
        return True

    async def claim_of(self, client_id: object, password: object, source: str) -> str | None:
        """The id of the claim whose token is `password`, for a claim login with a usable
        client id; None (refused, counted) otherwise."""
        if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
            self.stats.reject(
                "auth_failed",
                "a claim login needs a client id of 1-128 letters, digits, '.', '_' or '-'",
                source=str(client_id)[:64],
            )
            return None
        if isinstance(password, bytes | bytearray):
            password = password.decode(errors="replace")
        try:
            return await self.claims.authenticate(
                f"Bearer {password}" if password else None, source
            )
        except IotasError as exc:
            self.stats.reject("auth_failed", f"claim login: {exc.detail}", source=client_id)
            return None

    async def handle(self, username: str, topic: str, payload: bytes) -> None:
        """A claim login published under its own prefix: a request is answered on
        `.../response`; anything else there is ignored."""
        claim_id, client_id = _parts(username)
        if topic != f"{TOPIC_PREFIX}/{client_id}/request":
            return
        answer = await self._answer(claim_id, payload)
        if self._publish is None:  # no login went through the plugin: cannot happen
            log.error("no way to answer the provisioning request of %s", client_id)
            return
        await self._publish(f"{TOPIC_PREFIX}/{client_id}/response", orjson.dumps(answer), 1)

    async def _answer(self, claim_id: str, payload: bytes) -> dict[str, Any]:
        try:
            if len(payload) > MAX_REQUEST:
                raise InvalidInput(f"a provisioning request may be at most {MAX_REQUEST} bytes")
            try:
                body = orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise InvalidInput(f"the request is not valid JSON: {exc}") from None
            return await self.claims.provision(
                claim_id, body, via="mqtt", endpoints=self._endpoints()
            )
        except IotasError as exc:
            return {"error": exc.type_slug, "status": exc.status, "detail": exc.detail}
        except Exception:
            log.exception("provisioning by claim %s over MQTT failed", claim_id)
            return {
                "error": "internal",
                "status": 500,
                "detail": "iotas failed to handle this request; the server log has the details",
            }

    def _endpoints(self) -> dict[str, str | None]:
        # The broker's configured address; when it listens on every interface, the device
        # knows the address better than iotas does (it is connected to it).
        host = self.claims.settings.mqtt_host
        if host in WILDCARD_HOSTS:
            return {"http": None, "mqtt": None, "mqtts": None}
        return self.claims.endpoints(host, None)
