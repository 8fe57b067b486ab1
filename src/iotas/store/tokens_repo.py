"""API tokens, stored only as sha256 digests of the secret."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from iotas.store.schema import tokens


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    subject: str
    role: str
    namespaces: list[str] | None
    expires_us: int | None
    revoked_us: int | None


async def by_digest(conn: AsyncConnection, digest: str) -> TokenRecord | None:
    row = (await conn.execute(select(tokens).where(tokens.c.token_hash == digest))).first()
    if row is None:
        return None
    return TokenRecord(
        row.id, row.subject, row.role, row.namespaces, row.expires_us, row.revoked_us
    )


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(tokens))).scalar_one())


async def add(
    conn: AsyncConnection,
    *,
    token_id: str,
    subject: str,
    role: str,
    digest: str,
    created_us: int,
    namespaces: list[str] | None = None,
    expires_us: int | None = None,
) -> None:
    await conn.execute(
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
