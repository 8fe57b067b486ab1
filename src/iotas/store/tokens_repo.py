"""API tokens, stored only as sha256 digests of the secret."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from iotas.store.schema import tokens


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    subject: str
    role: str
    namespaces: list[str] | None
    expires_us: int | None
    revoked_us: int | None


def by_digest(conn: Connection, digest: str) -> TokenRecord | None:
    row = (conn.execute(select(tokens).where(tokens.c.token_hash == digest))).first()
    if row is None:
        return None
    return TokenRecord(
        row.id, row.subject, row.role, row.namespaces, row.expires_us, row.revoked_us
    )


def count(conn: Connection) -> int:
    return int((conn.execute(select(func.count()).select_from(tokens))).scalar_one())


def add(
    conn: Connection,
    *,
    token_id: str,
    subject: str,
    role: str,
    digest: str,
    created_us: int,
    namespaces: list[str] | None = None,
    expires_us: int | None = None,
) -> None:
    conn.execute(
        insert(tokens).values(
            id=token_id,
            subject=subject,
            role=role,
            namespaces=namespaces,
            token_hash=digest,
            created_us=created_us,
            expires_us=expires_us,
        )
    )


def all_tokens(conn: Connection) -> list[dict[str, object]]:
    """Every token's public record (never its digest), oldest first."""
    columns = (
        tokens.c.id,
        tokens.c.subject,
        tokens.c.role,
        tokens.c.namespaces,
        tokens.c.created_us,
        tokens.c.expires_us,
        tokens.c.revoked_us,
    )
    rows = conn.execute(select(*columns).order_by(tokens.c.created_us, tokens.c.id))
    return [dict(row._mapping) for row in rows]


def revoke(conn: Connection, token_id: str, now_us: int) -> bool | None:
    """Revoke a token: True if it was active, False if it was revoked already, None if there is
    no such token."""
    row = conn.execute(select(tokens.c.revoked_us).where(tokens.c.id == token_id)).first()
    if row is None:
        return None
    if row.revoked_us is not None:
        return False
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_us=now_us))
    return True
