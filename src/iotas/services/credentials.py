"""Device credentials: create (the secret is shown once), list, revoke, and check a device's
password when it connects to the MQTT broker.

Only a `$7$` PBKDF2-SHA512 hash of each secret is stored (see `iotas.domain.secrets`). Each
create and revoke is one unit of work that also journals `credential_added` or
`credential_revoked` (the credential's id and type, never a secret or a hash) and folds it
into the Thing, like every other change.

A credential belongs to the Thing as it was created: one made before the Thing's current
`created_at` (a deleted and re-created id) is neither listed nor accepted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from sqlalchemy import Connection

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from iotas.domain.ids import check_thing_id, namespace_of
from iotas.domain.merge_patch import JSONObject
from iotas.domain.secrets import ITERATIONS, MAX_SECRET_LENGTH, hash_secret, new_secret
from iotas.domain.secrets import verify_secret as _verify_secret
from iotas.domain.things import Thing
from iotas.services.ca import CertificateAuthority, Issued
from iotas.services.changes import changed
from iotas.services.context import Actor, Context
from iotas.store import credentials_repo, journal_repo, things_repo
from iotas.store.credentials_repo import PASSWORD, X509, CredentialRow
from iotas.store.store import Store, WriteTx

log = logging.getLogger("iotas.credentials")

# A Thing with more active secrets than this is almost certainly a script that forgot to
# revoke; it also bounds the hashes a wrong password costs (one per active secret).
MAX_ACTIVE: Final = 32
# Verified (Thing, secret) pairs kept at most; beyond this the cache starts over.
CACHE_LIMIT: Final = 10_000
WRITE_ROLES: Final = frozenset({"admin", "operator"})
READ_ROLES: Final = frozenset({"admin", "operator", "viewer"})

# Aliases so annotations inside the class do not name its `list` method.
Listing = list[dict[str, Any]]
HashList = list[tuple[str, str]]


class CredentialService:
    """Credentials of Things, and the password check the embedded broker calls per connect.

    `cache_seconds` is how long a verified (Thing id, secret) pair is trusted without another
    hash: the price of a revocation reaching other API nodes late (this node forgets a
    Thing's entries at once when it revokes). `hash_concurrency` bounds the threads hashing
    at once, so a burst of connections cannot fill the loop's default executor.
    """

    def __init__(
        self,
        store: Store,
        *,
        iterations: int = ITERATIONS,
        cache_seconds: float = 30.0,
        hash_concurrency: int = 2,
        ca: CertificateAuthority | None = None,
        certificate_days: int = 365,
        grace_seconds: int = 7 * 24 * 3600,
    ) -> None:
        self.store = store
        self.ca = ca
        self.certificate_days = certificate_days
        # How long a renewed certificate keeps working: time for the device to switch over.
        self.grace_seconds = grace_seconds
        self.iterations = iterations
        self.cache_seconds = cache_seconds
        self._hashing = asyncio.Semaphore(hash_concurrency)
        # Thing id -> {sha256(Thing id, secret): monotonic expiry}.
        self._verified: dict[str, dict[str, float]] = {}
        self._cached = 0
        # Bumped by every revocation: a check that read the database before it must not
        # cache its (possibly now stale) success.
        self._epoch = 0
        # Called with the Thing id after a revocation: the embedded broker drops the Thing's
        # live connection, so a revoked device is out at once, not at its next reconnect.
        self.on_revoked: list[Callable[[str], object]] = []

    # -- operator API ------------------------------------------------------------------------

    async def create(self, ctx: Context, thing_id: str, body: object) -> dict[str, Any]:
        """A new credential; the result holds the secret, which is never available again."""
        check_thing_id(thing_id)
        authorize(ctx.actor, thing_id, write=True)
        new = await self.prepare(thing_id, body)

        def unit(tx: WriteTx) -> CredentialRow:
            row, _ = add_in(tx, ctx, tx.existing(thing_id), new)
            return row

        row = await self.store.write(unit)
        return {**to_dict(row), **new.shown_once}

    async def prepare(self, thing_id: str, body: object) -> NewCredential:
        """The slow part of a new credential, done before any transaction: hash a new secret
        or sign a certificate. `add_in` then stores it inside a unit of work."""
        type_ = credential_type(body)
        serial: str | None = None
        expires_us: int | None = None
        if type_ == X509:
            issued = await self._certificate(thing_id, body)
            # Kept: the certificate's fingerprint (to recognise it on connect, and revoke it).
            hashed = f"sha256:{issued.fingerprint}"
            serial = format(issued.serial, "x")
            expires_us = int(issued.not_after.timestamp() * 1_000_000)
            shown: dict[str, Any] = {
                "certificate": issued.certificate_pem,
                "ca_certificate": self.ca.certificate_pem if self.ca else None,
                "serial": serial,
                "not_after": issued.not_after.isoformat().replace("+00:00", "Z"),
            }
            if issued.private_key_pem is not None:
                shown["private_key"] = issued.private_key_pem
        else:
            secret = new_secret()
            async with self._hashing:
                hashed = await asyncio.to_thread(hash_secret, secret, iterations=self.iterations)
            shown = {"secret": secret}
        return NewCredential(secrets.token_hex(8), type_, hashed, shown, serial, expires_us)

    async def renew(self, ctx: Context, thing_id: str, body: object) -> dict[str, Any]:
        """A new certificate for the Thing in place of its current one, named by serial:
        `{"serial": <hex>, "csr"?: <PEM>}`. The old certificate keeps working for the grace
        period (or until it expires, if sooner), so the device can switch over; the answer
        holds the new certificate (and key, without a CSR) once. The Thing itself (over
        mTLS or MQTT) or an admin may renew."""
        check_thing_id(thing_id)
        if not (ctx.actor.role == "device" and ctx.actor.subject == thing_id):
            authorize(ctx.actor, thing_id, write=True)
        if not isinstance(body, dict) or not isinstance(body.get("serial"), str):
            raise InvalidInput(
                'a renewal names the certificate it replaces: {"serial": "<hex>", "csr": ...}'
            )
        serial = str(body["serial"]).lower()
        request = {k: v for k, v in body.items() if k != "serial"}
        new = await self.prepare(thing_id, {**request, "type": X509})

        def unit(tx: WriteTx) -> tuple[CredentialRow, CredentialRow]:
            before = tx.existing(thing_id)
            old = credentials_repo.x509_by_serial(tx.conn, thing_id, serial)
            if (
                old is None
                or not _current(before, [old])
                or not _usable(old, tx.ts_us)
                or journal_repo.was_replaced(tx.conn, thing_id, old.id)
            ):
                # A certificate already renewed is only in its grace period: renewing it
                # again would let an old key keep minting full-length certificates.
                raise NotFound(f"{thing_id!r} has no valid certificate with serial {serial[:40]!r}")
            until = tx.ts_us + self.grace_seconds * 1_000_000
            if old.expires_us is not None:
                until = min(until, old.expires_us)
            row, _ = add_in(tx, ctx, before, new, replaces=old.id)
            credentials_repo.set_expiry(tx.conn, old.id, until)
            return row, replace(old, expires_us=until)

        row, old = await self.store.write(unit)
        return {**to_dict(row), **new.shown_once, "replaces": to_dict(old)}

    async def has_active(self, thing_id: str) -> bool:
        """Whether the Thing has any credential it can still log in with."""

        def unit(conn: Connection) -> bool:
            thing = things_repo.get(conn, thing_id)
            if thing is None:
                return False
            now = clock.now_us()
            rows = _current(thing, credentials_repo.of_thing(conn, thing_id))
            return any(_usable(row, now) for row in rows)

        return await self.store.read(unit)

    async def verify_certificate(self, thing_id: str, fingerprint: str) -> bool:
        """Whether the certificate with this sha256 fingerprint (hex) is an active, unexpired
        x509 credential of the Thing: a chain that verifies is not enough, the certificate
        may have been revoked or replaced. Fails closed."""
        hashed = f"sha256:{fingerprint.lower()}"

        def unit(conn: Connection) -> bool:
            thing = things_repo.get(conn, thing_id)
            row = credentials_repo.active_x509(conn, thing_id, hashed)
            return (
                thing is not None
                and row is not None
                and bool(_current(thing, [row]))
                and _usable(row, clock.now_us())
            )

        try:
            return await self.store.read(unit)
        except Exception:
            log.exception("could not read the credentials of %s; refusing it", thing_id)
            return False

    async def certificate_things(self) -> list[str]:
        """Ids of the Things with an active certificate, sorted: the identities an external
        broker that checks certificates itself must give topics to (`iotas broker-config`)."""
        rows = await self.store.read(
            lambda conn: credentials_repo.x509_things(conn, clock.now_us())
        )
        return sorted(
            {
                thing_id
                for thing_id, created_us, born in rows
                if created_us >= clock.parse_rfc3339(born)
            }
        )

    async def crl(self) -> str:
        """The CA's certificate revocation list (PEM) of every certificate no longer accepted:
        for brokers that check device certificates themselves (see `iotas broker-config`)."""
        if self.ca is None:
            raise NotFound("this iotas has no certificate authority")
        ended = await self.store.read(
            lambda conn: credentials_repo.ended_x509(conn, clock.now_us())
        )
        revoked = [
            (int(serial, 16), dt.datetime.fromtimestamp(at_us / 1_000_000, dt.UTC))
            for serial, at_us in ended
        ]
        return await asyncio.to_thread(self.ca.crl_pem, revoked)

    async def _certificate(self, thing_id: str, body: object) -> Issued:
        if self.ca is None:
            raise InvalidInput("this iotas has no certificate authority configured", field="type")
        assert isinstance(body, dict)
        ca, days = self.ca, self.certificate_days
        if "csr" in body:
            return await asyncio.to_thread(ca.sign_csr, thing_id, body["csr"], days=days)
        return await asyncio.to_thread(ca.issue_with_new_key, thing_id, days=days)

    async def list(self, thing_id: str) -> Listing:
        """The Thing's credentials, oldest first, revoked ones too; no secrets, no hashes."""
        check_thing_id(thing_id)

        def unit(conn: Connection) -> Listing:
            thing = things_repo.get(conn, thing_id)
            if thing is None:
                raise NotFound(f"there is no Thing {thing_id!r}")
            return [
                to_dict(row) for row in _current(thing, credentials_repo.of_thing(conn, thing_id))
            ]

        return await self.store.read(unit)

    async def revoke(self, ctx: Context, thing_id: str, credential_id: str) -> None:
        """Revoke one credential; revoking a revoked one again changes (and records) nothing."""
        check_thing_id(thing_id)
        authorize(ctx.actor, thing_id, write=True)

        def unit(tx: WriteTx) -> None:
            before = tx.existing(thing_id)
            row = credentials_repo.get(tx.conn, credential_id)
            if row is None or row.thing_id != thing_id or not _current(before, [row]):
                raise NotFound(f"{thing_id!r} has no credential {credential_id[:64]!r}")
            if row.revoked_us is not None:
                return
            revoke_in(tx, ctx, before, [row])

        try:
            await self.store.write(unit)
        finally:
            self.forget(thing_id)

    async def revoke_all(self, ctx: Context, thing_id: str) -> int:
        """Revoke every active credential of the Thing (before deleting it); returns how many."""
        check_thing_id(thing_id)
        authorize(ctx.actor, thing_id, write=True)

        def unit(tx: WriteTx) -> int:
            before = tx.existing(thing_id)
            active = [
                row
                for row in _current(before, credentials_repo.of_thing(tx.conn, thing_id))
                if row.revoked_us is None
            ]
            if not active:
                return 0
            revoke_in(tx, ctx, before, active)
            return len(active)

        try:
            return await self.store.write(unit)
        finally:
            self.forget(thing_id)

    async def active_hashes(self) -> HashList:
        """(Thing id, `$7$` hash) of every active password, by Thing id, each Thing's newest
        last: what an external broker needs (see `iotas broker-config`)."""
        rows = await self.store.read(credentials_repo.all_active_passwords)
        return [
            (row.thing_id, row.secret_hash)
            for row in rows
            if row.created_us >= clock.parse_rfc3339(row.thing_created_at)
        ]

    # -- the broker's check --------------------------------------------------------------------

    async def verify_password(self, thing_id: str, secret: str) -> bool:
        """Whether `secret` is an active password of the Thing: called on every device connect.

        The PBKDF2 work runs in a thread (at most `hash_concurrency` at once), never on the
        event loop; a success is remembered for `cache_seconds`. Fails closed: a database
        error is logged and answered with False.
        """
        if not thing_id or not secret or len(secret) > MAX_SECRET_LENGTH:
            return False
        key = hashlib.sha256(f"{thing_id}\0{secret}".encode()).hexdigest()
        now = time.monotonic()
        expiry = self._verified.get(thing_id, {}).get(key)
        if expiry is not None and expiry > now:
            return True
        epoch = self._epoch
        try:
            rows = await self.store.read(
                lambda conn: credentials_repo.active_passwords(conn, thing_id)
            )
        except Exception:
            log.exception("could not read the credentials of %s; refusing it", thing_id)
            return False
        hashes = [
            row.secret_hash
            for row in rows
            if row.created_us >= clock.parse_rfc3339(row.thing_created_at)
        ]
        if not hashes:  # no hash to spend: unknown Thing, or nothing active
            return False
        async with self._hashing:
            ok = await asyncio.to_thread(_matches, thing_id, secret, hashes)
        if ok and epoch == self._epoch and self.cache_seconds > 0:
            self._remember(thing_id, key, time.monotonic() + self.cache_seconds)
        return ok

    def forget(self, thing_id: str) -> None:
        """Drop what this node remembers of the Thing's verified secrets (after a revocation)."""
        self._epoch += 1
        dropped = self._verified.pop(thing_id, None)
        if dropped:
            self._cached -= len(dropped)
        for callback in self.on_revoked:
            try:
                callback(thing_id)
            except Exception:  # one listener's failure must not undo the revocation's effect
                log.exception("after revoking %s's credentials", thing_id)

    def _remember(self, thing_id: str, key: str, expiry: float) -> None:
        if self._cached >= CACHE_LIMIT:
            self._verified.clear()
            self._cached = 0
        entries = self._verified.setdefault(thing_id, {})
        if key not in entries:
            self._cached += 1
        entries[key] = expiry


# -- rules shared with other units ------------------------------------------------------------


def credential_type(body: object) -> str:
    """The type asked for in a create body: `{"type": "password"}`, or `{"type": "x509"}`
    with an optional `"csr"` (PEM)."""
    if not isinstance(body, dict):
        raise InvalidInput('a credential must be a JSON object such as {"type": "password"}')
    type_ = body.get("type")
    allowed = {"type", "csr"} if type_ == X509 else {"type"}
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(unknown)} in a credential")
    if type_ in (PASSWORD, X509):
        return str(type_)
    raise InvalidInput(
        f'the credential type must be "password" or "x509", not {str(type_)[:40]!r}',
        field="type",
    )


def authorize(actor: Actor, thing_id: str, *, write: bool) -> None:
    """Credentials are for operators and admins to change, viewers to list, within the
    namespaces a token is scoped to."""
    roles = WRITE_ROLES if write else READ_ROLES
    if actor.role not in roles:
        verb = "change" if write else "read"
        raise Forbidden(f"a {actor.role} token cannot {verb} credentials")
    if actor.namespaces is not None and namespace_of(thing_id) not in actor.namespaces:
        raise Forbidden(f"this token is not allowed in namespace {namespace_of(thing_id)!r}")


@dataclass(frozen=True, slots=True)
class NewCredential:
    """A credential made but not stored yet; `shown_once` is what its creator receives."""

    id: str
    type: str
    secret_hash: str
    shown_once: dict[str, Any]
    serial: str | None = None
    expires_us: int | None = None


def add_in(
    tx: WriteTx, ctx: Context, thing: Thing, new: NewCredential, *, replaces: str | None = None
) -> tuple[CredentialRow, Thing]:
    """Inside a unit: store `new` for `thing` and journal it; returns the row and the Thing
    after the event (written). Refused while the Thing is quarantined (only releasing it may
    give it credentials again) or has too many already."""
    if thing.quarantine is not None:
        raise Conflict(f"{thing.id!r} is quarantined: release it (with a new credential) instead")
    rows = _current(thing, credentials_repo.of_thing(tx.conn, thing.id))
    if sum(row.revoked_us is None for row in rows) >= MAX_ACTIVE:
        raise Conflict(
            f"{thing.id!r} has {MAX_ACTIVE} active credentials already: "
            "revoke the ones no longer in use first"
        )
    row = CredentialRow(
        new.id, thing.id, new.type, new.secret_hash, tx.ts_us, None, new.serial, new.expires_us
    )
    patch = _patch(row)
    if replaces is not None:
        patch["replaces"] = replaces
    after = changed(tx, ctx, thing, thing.id, ev.CREDENTIAL_ADDED, patch)
    credentials_repo.insert_credential(tx.conn, row)
    return row, after


def revoke_in(tx: WriteTx, ctx: Context, thing: Thing, rows: list[CredentialRow]) -> Thing:
    """Inside a unit: revoke `rows` of `thing` and journal each; returns the Thing after the
    events (written). The caller calls `CredentialService.forget(thing.id)` once the unit
    has committed."""
    after = thing
    for row in rows:
        after = changed(tx, ctx, after, thing.id, ev.CREDENTIAL_REVOKED, _patch(row))
    credentials_repo.revoke(tx.conn, [row.id for row in rows], tx.ts_us)
    return after


def revoke_all_in(tx: WriteTx, ctx: Context, thing: Thing) -> Thing:
    """For the unit that deletes a Thing: revoke its active credentials first (journaled)."""
    active = [
        row
        for row in _current(thing, credentials_repo.of_thing(tx.conn, thing.id))
        if row.revoked_us is None
    ]
    return revoke_in(tx, ctx, thing, active) if active else thing


def to_dict(row: CredentialRow) -> dict[str, Any]:
    doc = {
        "id": row.id,
        "thing_id": row.thing_id,
        "type": row.type,
        "created_at": clock.to_rfc3339(row.created_us),
        "revoked_at": None if row.revoked_us is None else clock.to_rfc3339(row.revoked_us),
    }
    if row.type == X509:
        doc["serial"] = row.serial
        doc["expires_at"] = None if row.expires_us is None else clock.to_rfc3339(row.expires_us)
    return doc


def _usable(row: CredentialRow, now_us: int) -> bool:
    return row.revoked_us is None and (row.expires_us is None or row.expires_us > now_us)


def _matches(thing_id: str, secret: str, hashes: list[str]) -> bool:
    # Runs in a worker thread. Newest first: a device normally uses its newest secret.
    for hashed in hashes:
        try:
            if _verify_secret(secret, hashed):
                return True
        except ValueError as exc:
            log.warning("a stored password hash of %s is damaged (%s); ignored", thing_id, exc)
    return False


def _current(thing: Thing, rows: list[CredentialRow]) -> list[CredentialRow]:
    born = clock.parse_rfc3339(thing.created_at)
    return [row for row in rows if row.created_us >= born]


def _patch(row: CredentialRow) -> JSONObject:
    """What the journal says of a credential: its id and type, and a certificate's serial
    (what a CRL names); never the secret or its hash."""
    patch: JSONObject = {"id": row.id, "type": row.type}
    if row.serial is not None:
        patch["serial"] = row.serial
    return patch
