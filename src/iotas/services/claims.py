"""Zero-touch provisioning by claim, as AWS IoT fleet provisioning does it.

An admin makes a *claim*: a token (stored as sha256 only, shown once) bound to a template of
the Thing a device becomes (namespace, kind, labels, attributes, initial desired state, and
a pattern that makes the Thing's name from the device's serial), with a maximum number of
uses and an expiry. A device that holds only the claim token and its serial presents them
(with a CSR, or without one to get a key pair made here) over HTTPS or the embedded broker
and receives its Thing id and an x509 certificate.

One provisioning is one unit of work: the use is counted (a conditional UPDATE, so the last
use is taken once however many devices race for it), the Thing is created from the template
and its desired state set (journaled `thing_created` and `desired_changed` with actor
`claim:<id>`), and the certificate added (`credential_added`).

A serial whose Thing exists already may provision again only if the claim itself created
that Thing (read from the journal: the actor of its `thing_created` event); that issues a
new certificate and counts as a use. Any other existing Thing is refused (409): a claim
must never hand out a certificate for a Thing an operator made.
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from iotas.domain import clock, merge_patch
from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from iotas.domain.ids import NAMESPACE_RE, THING_ID_RE
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import validate_record
from iotas.services import changes
from iotas.services.auth import Authenticator, digest
from iotas.services.context import Actor, Context
from iotas.services.credentials import CredentialService, add_in, to_dict
from iotas.services.registry import create_in, desired_in
from iotas.settings import Settings
from iotas.store import claims_repo, journal_repo
from iotas.store.claims_repo import ClaimRow
from iotas.store.credentials_repo import CredentialRow
from iotas.store.store import Store, WriteTx

ACTOR_PREFIX: Final = "claim:"
TOKEN_PREFIX: Final = "iotas_claim_"  # noqa: S105 (a prefix, not a secret)
SERIAL: Final = "{serial}"
MAX_USES: Final = 1_000_000
MAX_PATTERN: Final = 100
SERIAL_RULE: Final = (
    "a serial is 1-128 letters, digits, '.', '_' and '-', starting with a letter or digit "
    "and not ending with '.' or '-' (it becomes part of the Thing id)"
)


class ClaimAuthenticator(Authenticator):
    """The operators' authenticator with claim tokens looked up instead: the same per-source
    failure allowance (the very same one, shared, so a guesser cannot double its rate by
    alternating between the two kinds of token), the same 429 before any lookup, the same
    failure counters (`/api/v1/stats`)."""

    def __init__(self, operators: Authenticator) -> None:
        super().__init__(
            operators.store,
            cache_seconds=0,
            failure_burst=operators.failure_burst,
            failure_refill=operators.failure_refill,
        )
        self.api = operators.api
        self.failures = operators.failures

    async def _authenticate(self, authorization: str | None) -> Actor:
        # No cache: claims are used rarely, and a revocation then takes effect at once.
        key = self.bearer_digest(authorization, "claim token")
        claim = await self.store.read(lambda conn: claims_repo.by_digest(conn, key))
        if claim is None:
            # The same answer whether or not any claim exists.
            self.failures["unknown_claim"] += 1
            raise Unauthenticated("the claim token is not valid")
        check_usable(claim, clock.now_us())
        return Actor(ACTOR_PREFIX + claim.id, role="claim")


class ClaimService:
    def __init__(
        self,
        store: Store,
        authenticator: Authenticator,
        credentials: CredentialService,
        settings: Settings,
    ) -> None:
        self.store = store
        self.credentials = credentials
        self.settings = settings
        self.authenticator = ClaimAuthenticator(authenticator)

    # -- operators (admin) ----------------------------------------------------------------

    async def create(self, ctx: Context, body: object) -> dict[str, Any]:
        """A new claim; the answer holds its token, which is never available again."""
        if not isinstance(body, dict):
            raise InvalidInput('a claim is {"template": {...}, "max_uses": ..., "expires": ...}')
        template = validate_template(body.get("template"))
        if not _sees(ctx.actor, template):
            raise Forbidden(
                f"this token is limited to other namespaces than {template['namespace']!r}"
            )
        max_uses = body.get("max_uses", 1)
        if max_uses is not None and (
            not isinstance(max_uses, int)
            or isinstance(max_uses, bool)
            or not 1 <= max_uses <= MAX_USES
        ):
            raise InvalidInput(
                f"max_uses must be a whole number from 1 to {MAX_USES}, or null for no limit",
                field="max_uses",
            )
        expires_us = _expiry(body.get("expires"))
        claim_id = secrets.token_hex(8)
        token = f"{TOKEN_PREFIX}{claim_id}_{secrets.token_urlsafe(32)}"
        row = ClaimRow(
            claim_id, template, max_uses, 0, ctx.actor.subject, clock.now_us(), expires_us, None
        )

        def unit(tx: WriteTx) -> None:
            claims_repo.add(tx.conn, row, digest(token))
            changes.record(tx, ctx, ev.CLAIM, claim_id, ev.CLAIM_CREATED, _journaled(row))

        await self.store.write(unit)
        return {**public(row, row.created_us), "token": token}

    async def list(self, actor: Actor) -> list[dict[str, Any]]:
        now = clock.now_us()
        rows = await self.store.read(claims_repo.all_claims)
        return [public(row, now) for row in rows if _sees(actor, row.template)]

    async def get(self, actor: Actor, claim_id: str) -> dict[str, Any]:
        row = await self.store.read(lambda conn: claims_repo.get(conn, claim_id))
        if row is None or not _sees(actor, row.template):
            raise NotFound(f"there is no claim {claim_id[:64]!r}")
        return public(row, clock.now_us())

    async def revoke(self, ctx: Context, claim_id: str) -> None:
        """Revoke a claim: no device can provision with it any more (at once: claims are not
        cached). Things and certificates it made stay; revoke those one by one."""

        def unit(tx: WriteTx) -> bool | None:
            row = claims_repo.get(tx.conn, claim_id)
            if row is None or not _sees(ctx.actor, row.template):
                return None
            revoked = claims_repo.revoke(tx.conn, claim_id, tx.ts_us)
            if revoked:
                changes.record(tx, ctx, ev.CLAIM, claim_id, ev.CLAIM_REVOKED, {"id": claim_id})
            return revoked

        if await self.store.write(unit) is None:
            raise NotFound(f"there is no claim {claim_id[:64]!r}")

    # -- devices ------------------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, source: str) -> str:
        """The id of the claim whose token is in `authorization` (`Bearer <token>`); a source
        that fails too often is refused (429) before its tokens are looked at."""
        actor = await self.authenticator.authenticate(authorization, source)
        return actor.subject.removeprefix(ACTOR_PREFIX)

    async def provision(
        self, claim_id: str, body: object, *, via: str, endpoints: dict[str, str | None]
    ) -> dict[str, Any]:
        """Provision the device of `body` (`{"serial", "csr"?}`) by the claim: its Thing,
        certificate (and key, without a CSR: in this answer only) and where to connect."""
        serial, csr = provision_body(body)
        claim = await self.store.read(lambda conn: claims_repo.get(conn, claim_id))
        if claim is None:  # only an authenticated claim gets here, and claims are never deleted
            raise Unauthenticated("the claim token is not valid")
        check_usable(claim, clock.now_us())
        template = claim.template
        thing_id = thing_id_for(template, serial)
        record = validate_record(
            {k: template.get(k) for k in ("kind", "labels", "attributes")} | {"links": []}
        )
        desired: JSONObject = template.get("desired") or {}
        # Signing (or making a key) is slow: done before the transaction, like any credential.
        credential: dict[str, Any] = (
            {"type": "x509"} if csr is None else {"type": "x509", "csr": csr}
        )
        new = await self.credentials.prepare(thing_id, credential)
        actor = Actor(ACTOR_PREFIX + claim_id, role="claim")
        ctx = Context(actor, f"provisioning by claim {claim_id} over {via}")

        def unit(tx: WriteTx) -> tuple[CredentialRow, bool]:
            before = tx.thing(thing_id)
            if before is None:
                thing = create_in(tx, ctx, thing_id, record)
                if desired:
                    thing = desired_in(tx, ctx, thing, desired)
            else:
                maker = claims_repo.creator(
                    tx.conn, thing_id, clock.parse_rfc3339(before.created_at)
                )
                if maker is None:  # created in this very batch, not journaled yet
                    raise Conflict(f"{thing_id!r} is being provisioned right now: try again")
                if maker != actor.subject:
                    raise Conflict(
                        f"the Thing {thing_id!r} exists and was not provisioned by this claim"
                    )
                if journal_repo.has_event(
                    tx.conn,
                    thing_id,
                    ev.THING_QUARANTINED,
                    clock.parse_rfc3339(before.created_at),
                ):
                    # Its firmware may hold the fleet's claim token: once quarantined, it
                    # comes back only through an operator's release, never by itself.
                    raise Conflict(
                        f"{thing_id!r} has been quarantined: an operator releases it, a claim "
                        "cannot provision it again"
                    )
                thing = before
            if not claims_repo.take_use(tx.conn, claim_id, tx.ts_us):
                # Another device took the last use (or it expired, or was revoked) since the
                # check above: say which.
                current = claims_repo.get(tx.conn, claim_id)
                if current is not None:
                    check_usable(current, tx.ts_us)
                raise Conflict(f"claim {claim_id} cannot be used any more")
            changes.record(
                tx,
                ctx,
                ev.CLAIM,
                claim_id,
                ev.CLAIM_USED,
                {"id": claim_id, "thing_id": thing_id, "credential": new.id},
            )
            row, _ = add_in(tx, ctx, thing, new)
            return row, before is None

        row, created = await self.store.write(unit)
        shown = dict(new.shown_once)
        return {
            "thing_id": thing_id,
            "created": created,
            "certificate": shown.pop("certificate"),
            "ca_certificate": shown.pop("ca_certificate"),
            **({"private_key": shown.pop("private_key")} if "private_key" in shown else {}),
            "credential": {**to_dict(row), **shown},
            "endpoints": endpoints,
        }

    def endpoints(self, host: str, http_base: str | None) -> dict[str, str | None]:
        """Where a device provisioned through `host` connects: the MQTT broker (the external
        one's URL without its credentials, or the embedded one on `host`) and, when this
        iotas has one, the mTLS listener."""
        settings = self.settings
        mqtt = mqtts = None
        host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
        if settings.mqtt_url:
            scheme, _, rest = settings.mqtt_url.partition("://")
            mqtt = f"{scheme}://{rest.rsplit('@', 1)[-1].split('/', 1)[0]}"
        else:
            if settings.mqtt_port:
                mqtt = f"mqtt://{host}:{settings.mqtt_port}"
            # The mTLS listener is being added to the settings; read it when it is there.
            mqtts_port = getattr(settings, "mqtts_port", None)
            if mqtts_port:
                mqtts = f"mqtts://{host}:{mqtts_port}"
        return {"http": http_base, "mqtt": mqtt, "mqtts": mqtts}


# -- rules ---------------------------------------------------------------------------------------


def check_usable(claim: ClaimRow, now_us: int) -> None:
    """Refuse a revoked (403), expired (403) or used-up (409) claim, saying which."""
    if claim.revoked_us is not None:
        raise Forbidden(f"claim {claim.id} was revoked at {clock.to_rfc3339(claim.revoked_us)}")
    if claim.expires_us is not None and claim.expires_us <= now_us:
        raise Forbidden(f"claim {claim.id} expired at {clock.to_rfc3339(claim.expires_us)}")
    if claim.max_uses is not None and claim.uses >= claim.max_uses:
        raise Conflict(f"claim {claim.id} has been used {claim.uses} of {claim.max_uses} times")


def state_of(claim: ClaimRow, now_us: int) -> str:
    if claim.revoked_us is not None:
        return "revoked"
    if claim.expires_us is not None and claim.expires_us <= now_us:
        return "expired"
    if claim.max_uses is not None and claim.uses >= claim.max_uses:
        return "used_up"
    return "active"


def public(claim: ClaimRow, now_us: int) -> dict[str, Any]:
    """What operators see of a claim: never its token or digest."""

    def when(us: int | None) -> str | None:
        return None if us is None else clock.to_rfc3339(us)

    return {
        "id": claim.id,
        "template": claim.template,
        "max_uses": claim.max_uses,
        "uses": claim.uses,
        "state": state_of(claim, now_us),
        "created_by": claim.created_by,
        "created_at": when(claim.created_us),
        "expires_at": when(claim.expires_us),
        "revoked_at": when(claim.revoked_us),
    }


def validate_template(value: object) -> dict[str, Any]:
    """A claim's template, normalised: namespace, kind, labels, attributes, desired state and
    the pattern of the Thing's name (`{serial}` once, and nothing else in braces)."""
    if not isinstance(value, dict):
        raise InvalidInput(
            'a claim needs a template: {"namespace": ..., "kind": ..., "labels": {...}, '
            '"attributes": {...}, "desired": {...}, "name_pattern": "meter-{serial}"}',
            field="template",
        )
    namespace = value.get("namespace")
    if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        raise InvalidInput(
            "namespace must be 1-64 lowercase letters, digits and '-' (not at either end)",
            field="template.namespace",
        )
    record = validate_record(
        {k: value.get(k) for k in ("kind", "labels", "attributes")} | {"links": []}
    )
    desired = value.get("desired")
    if desired is None:
        desired = {}
    if not isinstance(desired, dict):
        raise InvalidInput("desired must be a JSON object", field="template.desired")
    try:
        merge_patch.check_json(desired, "desired")
    except ValueError as exc:
        raise InvalidInput(str(exc), field="template.desired") from None
    pattern = value.get("name_pattern")
    if pattern is None:
        pattern = SERIAL
    if (
        not isinstance(pattern, str)
        or len(pattern) > MAX_PATTERN
        or pattern.count(SERIAL) != 1
        or "{" in pattern.replace(SERIAL, "")
        or "}" in pattern.replace(SERIAL, "")
        or not THING_ID_RE.match(f"{namespace}:{pattern.replace(SERIAL, '0')}")
    ):
        raise InvalidInput(
            "name_pattern must contain {serial} once and otherwise only letters, digits, "
            f"'.', '_' and '-' (at most {MAX_PATTERN} characters), like 'meter-{{serial}}'",
            field="template.name_pattern",
        )
    return {
        "namespace": namespace,
        "kind": record["kind"],
        "labels": record["labels"],
        "attributes": record["attributes"],
        # A null cannot be set by a merge patch: dropped, as from any desired state.
        "desired": merge_patch.apply({}, desired),
        "name_pattern": pattern,
    }


def thing_id_for(template: dict[str, Any], serial: str) -> str:
    """`<namespace>:<name pattern with the serial in it>`; the serial must be a Thing name
    on its own, so no serial can reach outside the pattern."""
    namespace = str(template["namespace"])
    if not THING_ID_RE.match(f"{namespace}:{serial}"):
        raise InvalidInput(f"{serial[:200]!r} is not a valid serial: {SERIAL_RULE}", field="serial")
    thing_id = f"{namespace}:{str(template['name_pattern']).replace(SERIAL, serial)}"
    if not THING_ID_RE.match(thing_id):
        raise InvalidInput(
            f"with this claim's name pattern the serial {serial[:200]!r} makes the Thing id "
            f"{thing_id[:300]!r}, which is too long or not valid",
            field="serial",
        )
    return thing_id


def provision_body(body: object) -> tuple[str, str | None]:
    """`{"serial": ..., "csr": "<PEM>"}` (csr optional): the serial and the CSR."""
    if not isinstance(body, dict):
        raise InvalidInput('provisioning takes {"serial": ..., "csr": "<PEM CSR>"}')
    unknown = sorted(set(body) - {"serial", "csr"})
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(unknown)} in a provisioning request")
    serial = body.get("serial")
    if not isinstance(serial, str):
        raise InvalidInput(f"serial must be a string: {SERIAL_RULE}", field="serial")
    csr = body.get("csr")
    if csr is not None and not isinstance(csr, str):
        raise InvalidInput("csr must be a PEM certificate signing request", field="csr")
    return serial, csr


def _journaled(row: ClaimRow) -> JSONObject:
    """What the journal keeps of a new claim: what it makes and how often, not its token."""
    return {
        "id": row.id,
        "namespace": row.template.get("namespace"),
        "kind": row.template.get("kind"),
        "max_uses": row.max_uses,
        "expires_at": None if row.expires_us is None else clock.to_rfc3339(row.expires_us),
    }


def _sees(actor: Actor, template: dict[str, Any]) -> bool:
    """A token limited to namespaces sees only the claims that make Things in them."""
    return actor.namespaces is None or template.get("namespace") in actor.namespaces


def _expiry(value: object) -> int | None:
    if value is None:
        return None
    try:
        expires_us = clock.parse_rfc3339(value) if isinstance(value, str) else None
    except ValueError:
        expires_us = None
    if expires_us is None:
        raise InvalidInput("expires must be an RFC 3339 time", field="expires")
    if expires_us <= clock.now_us():
        raise InvalidInput("expires is in the past", field="expires")
    return expires_us
