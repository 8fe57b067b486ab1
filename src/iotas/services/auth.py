"""Operator authentication with bearer tokens.

A token is `iotas_<id>_<secret>`; only sha256(token) is stored. The secret has 256 bits of
entropy, so a fast hash is enough (a slow password hash protects guessable secrets, and these
are not). Lookups go by digest, so no comparison of the secret happens in Python at all.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain.errors import InvalidInput, NotFound, TooManyRequests, Unauthenticated
from iotas.domain.ids import NAMESPACE_RE, namespace_of
from iotas.services.allowance import Allowance
from iotas.services.ca import thing_of_certificate
from iotas.services.changes import record
from iotas.services.context import Actor, Context
from iotas.store import tokens_repo
from iotas.store.store import Store, WriteTx

ADMIN_SUBJECT = "admin"
ROLES = ("viewer", "operator", "admin")
MAX_SUBJECT = 200
MAX_NAMESPACES = 64


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    token_id = secrets.token_hex(8)
    return token_id, f"iotas_{token_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True, slots=True)
class AdminToken:
    token: str | None
    # True when this start created the token (it is shown once, then only its file has it).
    created: bool


# Failed authentications a source may make in a burst, and how fast that allowance refills:
# a person mistyping a token never notices; guessing at 1 token a second is pointless (a
# token has 256 bits of secret).
FAILURE_BURST = 20.0
FAILURE_REFILL_PER_S = 1.0
# An address's MQTT logins across all user names may fail this many times what one user
# name may: a spray over many Things' ids from one address still costs few password hashes,
# while a device failing on its own (a wrong secret, retried forever) behind a NAT spends
# only its own allowance and not its neighbours' (decision 48).
ADDRESS_SPREAD = 10.0


class NoCredential(Unauthenticated):
    """No bearer credential at all (a missing or malformed header): counted, but not charged
    against the address's allowance, since nothing was tried."""


@dataclass(frozen=True, slots=True)
class LoginTicket:
    """What an MQTT login took of the allowances up front (`reserve`), to `settle` after."""

    address: str
    account: str
    taken: float


class Authenticator:
    """API tokens (and, through subclasses and `authenticate_device`, claim tokens and HTTPS
    client certificates) and the failure allowances of both realms.

    Two realms, two allowances (decision 48). **API**: a credential is checked whatever the
    address's record, since the check is one lookup by digest and the secrets cannot be
    guessed; a valid one is never refused, and an address past its allowance has its
    failures answered 429 instead of 401. **MQTT** (the embedded broker's device logins): a
    check costs a password hash, so past the allowance a login is refused before any hash,
    right or wrong; the allowance is per address and user name, with a wider one per
    address."""

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = 5.0,
        failure_burst: float = FAILURE_BURST,
        failure_refill: float = FAILURE_REFILL_PER_S,
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.failure_burst = failure_burst
        self.failure_refill = failure_refill
        self._cache: dict[str, tuple[float, Actor]] = {}
        # Refused authentications by reason, both realms (`/api/v1/stats`, `/metrics`).
        self.failures: Counter[str] = Counter()
        self.api = Allowance(failure_burst, failure_refill, realm="api")
        self.mqtt_accounts = Allowance(failure_burst, failure_refill, realm="mqtt")
        self.mqtt_addresses = Allowance(
            failure_burst * ADDRESS_SPREAD, failure_refill * ADDRESS_SPREAD, realm="mqtt"
        )

    async def ensure_admin(self, configured: str | None, token_file: Path) -> AdminToken:
        """Make sure an admin can get in: the configured token, or one made on first start."""

        def unit(tx: WriteTx) -> AdminToken:
            if configured is not None:
                if tokens_repo.by_digest(tx.conn, digest(configured)) is None:
                    _add_admin(tx, secrets.token_hex(8), configured)
                return AdminToken(configured, False)
            if tokens_repo.count(tx.conn) > 0:
                return AdminToken(None, False)
            token_id, token = new_token()
            _add_admin(tx, token_id, token)
            # Written inside the transaction: if the file cannot be written, no token exists
            # that nobody could ever read.
            _write_secret(token_file, token)
            return AdminToken(token, True)

        return await self.store.write(unit)

    async def authenticate(self, authorization: str | None, source: str = "-") -> Actor:
        """The token's actor; a failure is counted, and answered 429 rather than 401 once
        `source` has failed too often."""
        return await self._limited(source, lambda: self._authenticate(authorization))

    async def authenticate_device(
        self, certificate_pem: str, source: str, verify: Callable[[str, str], Awaitable[bool]]
    ) -> Actor:
        """A Thing presenting its client certificate (HTTPS): its actor (role `device`,
        limited to its own namespace) if `verify(thing id, fingerprint)` says the certificate
        is one of its active credentials. Same failure counting and limit as tokens."""

        async def check() -> Actor:
            identity = thing_of_certificate(certificate_pem)
            if identity is None or not await verify(*identity):
                self.failures["certificate"] += 1
                raise Unauthenticated("the client certificate is not an active credential")
            thing_id = identity[0]
            return Actor(thing_id, role="device", namespaces=(namespace_of(thing_id),))

        return await self._limited(source, check)

    async def _limited(self, source: str, check: Callable[[], Awaitable[Actor]]) -> Actor:
        try:
            return await check()
        except NoCredential:
            raise  # nothing was guessed, nothing looked up: always the 401 and its challenge
        except Unauthenticated:
            # Charged against the allowance as it is now, not as read before the check: many
            # failures at once each cost one.
            if not self.api.allows(source):
                self.failures["rate_limited"] += 1
                self.api.refused(source, "API credentials")
                wait = self.api.wait(source)
                self.api.adjust(source, -1.0)
                raise TooManyRequests(
                    f"too many failed authentications from {source}: wait {wait} s",
                    retry_after=wait,
                ) from None
            self.api.adjust(source, -1.0)
            raise

    def reserve(self, source: str, username: str | None = None) -> LoginTicket | None:
        """What a device's MQTT login asks before it costs a password hash: None when it may
        not try now (`source` has failed too often as `username`, or as anyone), else what
        it took, to hand to `settle`. An address and user name with a failure on record
        take one attempt up front, so many attempts at once cannot outrun their failures;
        with a clean record they take nothing, so a fleet behind one address (a NAT, a
        gateway) reconnecting at once is not refused for the attempts it has in flight;
        callers bound how many run at once (decision 42)."""
        # A Thing id is at most 193 characters; a longer user name is no Thing's, and must not
        # make the allowance's keys as large as an MQTT string may be (64 KiB).
        account = f"{source}\0{(username or '-')[:200]}"
        for allowance, key in ((self.mqtt_accounts, account), (self.mqtt_addresses, source)):
            if not allowance.allows(key):
                self.failures["mqtt_rate_limited"] += 1
                allowance.refused(key, "MQTT logins")
                return None
        if self.mqtt_accounts.full(account):
            return LoginTicket(source, account, 0.0)
        self.mqtt_accounts.adjust(account, -1.0)
        self.mqtt_addresses.adjust(source, -1.0)
        return LoginTicket(source, account, 1.0)

    def settle(self, ticket: LoginTicket, ok: bool, reason: str) -> None:
        """After a `reserve`d attempt: a success gives back what was taken, a failure costs
        one attempt in all (of the user name's and of the address's) and is counted under
        `reason`."""
        delta = ticket.taken if ok else ticket.taken - 1.0
        if delta:
            self.mqtt_accounts.adjust(ticket.account, delta)
            self.mqtt_addresses.adjust(ticket.address, delta)
        if not ok:
            self.failures[reason] += 1

    def bearer_digest(self, authorization: str | None, what: str = "token") -> str:
        """The sha256 of the bearer token in an Authorization header (a missing or malformed
        header is counted and refused)."""
        if not authorization:
            self.failures["missing"] += 1
            raise NoCredential(f"send 'Authorization: Bearer <{what}>'")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            self.failures["malformed"] += 1
            raise NoCredential(f"the Authorization header must be 'Bearer <{what}>'")
        return digest(token)

    async def _authenticate(self, authorization: str | None) -> Actor:
        key = self.bearer_digest(authorization)
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self.store.read(lambda conn: tokens_repo.by_digest(conn, key))
        now_us = clock.now_us()
        if (
            record is None
            or record.revoked_us is not None
            or (record.expires_us is not None and record.expires_us <= now_us)
        ):
            self._cache.pop(key, None)
            self.failures["unknown"] += 1
            raise Unauthenticated("the token is unknown, expired or revoked")
        namespaces = tuple(record.namespaces) if record.namespaces is not None else None
        actor = Actor(record.subject, record.role, namespaces)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now + self.cache_seconds, actor)
        return actor

    def forget_all(self) -> None:
        """Drop every cached token (after a revocation)."""
        self._cache.clear()


class TokenAdmin:
    """Operators' API tokens: made (the token is in the answer only), listed, revoked."""

    def __init__(self, store: Store, authenticator: Authenticator) -> None:
        self.store = store
        self.authenticator = authenticator

    async def create(self, ctx: Context, body: object) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise InvalidInput('a token is {"subject": ..., "role": ..., "expires": ...}')
        subject, role = body.get("subject"), body.get("role")
        if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT:
            raise InvalidInput(
                f"subject must be a name of at most {MAX_SUBJECT} characters", field="subject"
            )
        if not subject.isprintable():
            raise InvalidInput("subject must be printable text", field="subject")
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
        namespaces = _namespaces(body.get("namespaces"))
        expires_us = None
        if body.get("expires") is not None:
            expires = body["expires"]
            try:
                expires_us = clock.parse_rfc3339(expires) if isinstance(expires, str) else None
            except ValueError:
                expires_us = None
            if expires_us is None:
                raise InvalidInput("expires must be an RFC 3339 time", field="expires")
            if expires_us <= clock.now_us():
                raise InvalidInput("expires is in the past", field="expires")
        token_id, token = new_token()
        now = clock.now_us()
        public = _public(
            {
                "id": token_id,
                "subject": subject,
                "role": role,
                "namespaces": namespaces,
                "created_us": now,
                "expires_us": expires_us,
                "revoked_us": None,
            }
        )

        def unit(tx: WriteTx) -> None:
            tokens_repo.add(
                tx.conn,
                token_id=token_id,
                subject=subject,
                role=str(role),
                digest=digest(token),
                created_us=now,
                expires_us=expires_us,
                namespaces=namespaces,
            )
            # The id is the token's public prefix (`iotas_<id>_...`); the secret part is not
            # journaled, nor its hash.
            journaled = {k: public[k] for k in ("id", "subject", "role", "namespaces")}
            journaled["expires_at"] = public["expires_at"]
            record(tx, ctx, ev.TOKEN, token_id, ev.TOKEN_CREATED, journaled)

        await self.store.write(unit)
        return {**public, "token": token}

    async def list(self) -> list[dict[str, Any]]:
        return [_public(row) for row in await self.store.read(tokens_repo.all_tokens)]

    async def revoke(self, ctx: Context, token_id: str) -> None:
        def unit(tx: WriteTx) -> bool | None:
            done = tokens_repo.revoke(tx.conn, token_id, tx.ts_us)
            if done:
                record(tx, ctx, ev.TOKEN, token_id, ev.TOKEN_REVOKED, {"id": token_id})
            return done

        if await self.store.write(unit) is None:
            raise NotFound(f"there is no token {token_id[:64]!r}")
        # This node forgets it at once; others within their cache time (5 s).
        self.authenticator.forget_all()


def _namespaces(value: object) -> list[str] | None:
    """A token's namespace limit: None (every namespace) or a non-empty list of names."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_NAMESPACES
        or not all(isinstance(ns, str) and NAMESPACE_RE.match(ns) for ns in value)
    ):
        raise InvalidInput(
            f"namespaces must be a list of 1 to {MAX_NAMESPACES} namespace names like "
            '["acme", "plant-7"] (or null for every namespace)',
            field="namespaces",
        )
    return sorted(set(value))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    def when(us: Any) -> str | None:
        return None if us is None else clock.to_rfc3339(int(us))

    return {
        "id": row["id"],
        "subject": row["subject"],
        "role": row["role"],
        "namespaces": row["namespaces"],
        "created_at": when(row["created_us"]),
        "expires_at": when(row["expires_us"]),
        "revoked_at": when(row["revoked_us"]),
    }


def _add_admin(tx: WriteTx, token_id: str, token: str) -> None:
    tokens_repo.add(
        tx.conn,
        token_id=token_id,
        subject=ADMIN_SUBJECT,
        role="admin",
        digest=digest(token),
        created_us=clock.now_us(),
    )


def _write_secret(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)
