"""Provisioning claims, stored with the sha256 digest of their token only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from iotas.domain.journal import THING, THING_CREATED, Event
from iotas.store.schema import claims, journal


@dataclass(frozen=True, slots=True)
class ClaimRow:
    id: str
    template: dict[str, Any]
    max_uses: int | None
    uses: int
    created_by: str
    created_us: int
    expires_us: int | None
    revoked_us: int | None


_COLUMNS = (
    claims.c.id,
    claims.c.template,
    claims.c.max_uses,
    claims.c.uses,
    claims.c.created_by,
    claims.c.created_us,
    claims.c.expires_us,
    claims.c.revoked_us,
)


def _row(row: Any) -> ClaimRow:
    return ClaimRow(
        row.id,
        dict(row.template),
        row.max_uses,
        int(row.uses),
        row.created_by,
        int(row.created_us),
        row.expires_us,
        row.revoked_us,
    )


def add(conn: Connection, row: ClaimRow, digest: str) -> None:
    conn.execute(
        insert(claims).values(
            id=row.id,
            token_hash=digest,
            template=row.template,
            max_uses=row.max_uses,
            uses=0,
            created_by=row.created_by,
            created_us=row.created_us,
            expires_us=row.expires_us,
        )
    )


def by_digest(conn: Connection, digest: str) -> ClaimRow | None:
    row = conn.execute(select(*_COLUMNS).where(claims.c.token_hash == digest)).first()
    return None if row is None else _row(row)


def get(conn: Connection, claim_id: str) -> ClaimRow | None:
    row = conn.execute(select(*_COLUMNS).where(claims.c.id == claim_id)).first()
    return None if row is None else _row(row)


def all_claims(conn: Connection) -> list[ClaimRow]:
    """Every claim, oldest first (an operator makes a handful, not thousands)."""
    rows = conn.execute(select(*_COLUMNS).order_by(claims.c.created_us, claims.c.id))
    return [_row(row) for row in rows]


def take_use(conn: Connection, claim_id: str, now_us: int) -> bool:
    """Count one use of the claim if it is still usable at `now_us`; False if it is not.
    One conditional UPDATE, so two transactions can never both take the last use."""
    result = conn.execute(
        update(claims)
        .where(
            and_(
                claims.c.id == claim_id,
                claims.c.revoked_us.is_(None),
                or_(claims.c.expires_us.is_(None), claims.c.expires_us > now_us),
                or_(claims.c.max_uses.is_(None), claims.c.uses < claims.c.max_uses),
            )
        )
        .values(uses=claims.c.uses + 1)
    )
    return result.rowcount == 1


def revoke(conn: Connection, claim_id: str, now_us: int) -> bool | None:
    """True if the claim was active, False if revoked already, None if there is none."""
    row = conn.execute(select(claims.c.revoked_us).where(claims.c.id == claim_id)).first()
    if row is None:
        return None
    if row.revoked_us is not None:
        return False
    conn.execute(update(claims).where(claims.c.id == claim_id).values(revoked_us=now_us))
    return True


def creator(conn: Connection, thing_id: str, created_us: int) -> str | None:
    """The actor of the event that created the current incarnation of the Thing (created at
    `created_us`), or None if that event is not in the journal yet. Searched by time first:
    the index on ts_us finds it without walking a chatty Thing's whole history."""
    row = conn.execute(
        select(journal.c.body)
        .where(
            journal.c.ts_us == created_us,
            journal.c.kind == THING,
            journal.c.record_id == thing_id,
            journal.c.type == THING_CREATED,
        )
        .order_by(journal.c.seq.desc())
        .limit(1)
    ).first()
    return None if row is None else Event.from_canonical(row.body).actor
