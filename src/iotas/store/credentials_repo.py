"""Reading and writing device credential rows. Repositories never begin or commit.

Reads that decide whether a secret is accepted join the Thing's row and return its
`created_at`: the service accepts only credentials made since the Thing (this incarnation of
its id) was created, so a deleted and re-created Thing never inherits old secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Row, Select, insert, or_, select, update

from iotas.store.schema import credentials, things

PASSWORD = "password"  # noqa: S105 (the name of a credential type, not a secret)
X509 = "x509"


@dataclass(frozen=True, slots=True)
class CredentialRow:
    id: str
    thing_id: str
    type: str
    secret_hash: str | None
    created_us: int
    revoked_us: int | None
    # X.509 only: the certificate's serial (hex) and when it stops being accepted.
    serial: str | None = None
    expires_us: int | None = None


@dataclass(frozen=True, slots=True)
class ActivePassword:
    """An unrevoked password credential and the creation time of the Thing it belongs to."""

    id: str
    thing_id: str
    secret_hash: str
    created_us: int
    thing_created_at: str


_COLUMNS = (
    credentials.c.id,
    credentials.c.thing_id,
    credentials.c.type,
    credentials.c.secret_hash,
    credentials.c.created_us,
    credentials.c.revoked_us,
    credentials.c.serial,
    credentials.c.expires_us,
)


def insert_credential(conn: Connection, row: CredentialRow) -> None:
    conn.execute(
        insert(credentials).values(
            id=row.id,
            thing_id=row.thing_id,
            type=row.type,
            secret_hash=row.secret_hash,
            created_us=row.created_us,
            revoked_us=row.revoked_us,
            serial=row.serial,
            expires_us=row.expires_us,
        )
    )


def get(conn: Connection, credential_id: str) -> CredentialRow | None:
    row = conn.execute(select(*_COLUMNS).where(credentials.c.id == credential_id)).first()
    return None if row is None else CredentialRow(*row)


def of_thing(conn: Connection, thing_id: str) -> list[CredentialRow]:
    """Every credential of the Thing id, revoked ones too, oldest first."""
    rows = conn.execute(
        select(*_COLUMNS)
        .where(credentials.c.thing_id == thing_id)
        .order_by(credentials.c.created_us, credentials.c.id)
    )
    return [CredentialRow(*row) for row in rows]


def _active_passwords() -> Select[str, str, str, int, str]:
    return (
        select(
            credentials.c.id,
            credentials.c.thing_id,
            credentials.c.secret_hash,
            credentials.c.created_us,
            things.c.created_at,
        )
        .join(things, things.c.id == credentials.c.thing_id)
        .where(
            credentials.c.type == PASSWORD,
            credentials.c.revoked_us.is_(None),
            credentials.c.secret_hash.is_not(None),
        )
    )


def active_passwords(conn: Connection, thing_id: str) -> list[ActivePassword]:
    """The Thing's unrevoked passwords, newest first (the one a device most likely uses)."""
    query = (
        _active_passwords()
        .where(credentials.c.thing_id == thing_id)
        .order_by(credentials.c.created_us.desc(), credentials.c.id.desc())
    )
    return [_active(row) for row in conn.execute(query)]


def all_active_passwords(conn: Connection) -> list[ActivePassword]:
    """Every unrevoked password of every existing Thing, by Thing id, each Thing's oldest first."""
    query = _active_passwords().order_by(
        credentials.c.thing_id, credentials.c.created_us, credentials.c.id
    )
    return [_active(row) for row in conn.execute(query)]


def _active(row: Row[str, str, str, int, str]) -> ActivePassword:
    credential_id, thing_id, secret_hash, created_us, thing_created_at = row
    return ActivePassword(credential_id, thing_id, secret_hash, created_us, thing_created_at)


def active_x509(conn: Connection, thing_id: str, secret_hash: str) -> CredentialRow | None:
    """The Thing's unrevoked x509 credential with this `sha256:<fingerprint>`, if any."""
    row = conn.execute(
        select(*_COLUMNS).where(
            credentials.c.thing_id == thing_id,
            credentials.c.type == X509,
            credentials.c.secret_hash == secret_hash,
            credentials.c.revoked_us.is_(None),
        )
    ).first()
    return None if row is None else CredentialRow(*row)


def x509_by_serial(conn: Connection, thing_id: str, serial: str) -> CredentialRow | None:
    row = conn.execute(
        select(*_COLUMNS).where(
            credentials.c.thing_id == thing_id,
            credentials.c.type == X509,
            credentials.c.serial == serial,
        )
    ).first()
    return None if row is None else CredentialRow(*row)


def x509_things(conn: Connection, now_us: int) -> list[tuple[str, int, str]]:
    """(Thing id, credential created_us, Thing created_at) of every unrevoked, unexpired
    certificate of an existing Thing, by Thing id: who may log in with a certificate."""
    rows = conn.execute(
        select(credentials.c.thing_id, credentials.c.created_us, things.c.created_at)
        .join(things, things.c.id == credentials.c.thing_id)
        .where(
            credentials.c.type == X509,
            credentials.c.revoked_us.is_(None),
            or_(credentials.c.expires_us.is_(None), credentials.c.expires_us > now_us),
        )
        .order_by(credentials.c.thing_id, credentials.c.created_us)
    )
    return [(thing_id, created_us, born) for thing_id, created_us, born in rows]


def ended_x509(conn: Connection, now_us: int) -> list[tuple[str, int]]:
    """(serial hex, when it stopped being accepted) of every certificate revoked, or cut
    short by a renewal's grace period, or expired, by serial: what a CRL lists. Rows of
    deleted Things are kept, and listed, like any other."""
    rows = conn.execute(
        select(credentials.c.serial, credentials.c.revoked_us, credentials.c.expires_us)
        .where(
            credentials.c.type == X509,
            credentials.c.serial.is_not(None),
            or_(credentials.c.revoked_us.is_not(None), credentials.c.expires_us <= now_us),
        )
        .order_by(credentials.c.serial)
    )
    ended: list[tuple[str, int]] = []
    for serial, revoked_us, expires_us in rows:
        times = [t for t in (revoked_us, expires_us) if t is not None]
        ended.append((serial, min(times)))
    return ended


def set_expiry(conn: Connection, credential_id: str, expires_us: int) -> None:
    conn.execute(
        update(credentials).where(credentials.c.id == credential_id).values(expires_us=expires_us)
    )


def revoke(conn: Connection, credential_ids: list[str], revoked_us: int) -> None:
    if credential_ids:
        conn.execute(
            update(credentials)
            .where(credentials.c.id.in_(credential_ids), credentials.c.revoked_us.is_(None))
            .values(revoked_us=revoked_us)
        )
