"""Forensic snapshots: a Thing's complete state at an instant, as evidence.

One transaction reads the Thing (twin with metadata, TD, attributes, labels, links), its
credentials' metadata (never secrets), the last 24 hours of its journal and its latest
telemetry, serialises them canonically, stores the bytes under their sha256 and journals
`snapshot_taken` with that digest: the journal names exactly the document, and the document
is exactly the state at the snapshot's seq. Nothing can change or delete a snapshot.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import check_thing_id
from iotas.services.changes import change
from iotas.services.context import Actor, Context
from iotas.store import credentials_repo, journal_repo, snapshots_repo, telemetry_repo
from iotas.store.store import Store, WriteTx

JOURNAL_WINDOW_US = 24 * 3600 * 1_000_000
MAX_JOURNAL_EVENTS = 10_000
MAX_REASON = 500
FORMAT = "iotas-snapshot/1"


class SnapshotService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def take(self, ctx: Context, thing_id: str, reason: object = None) -> dict[str, Any]:
        check_thing_id(thing_id)
        why = check_reason(reason)
        return await self.store.write(lambda tx: take_in(tx, ctx, thing_id, why))

    async def get(self, sha256: str, actor: Actor | None = None) -> str:
        """The snapshot's exact bytes (as text); none of a Thing outside the `actor`'s
        namespaces."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise InvalidInput("a snapshot is named by the 64 hex digits of its sha256")
        found = await self.store.read(lambda conn: snapshots_repo.get(conn, sha256))
        if found is None or (actor is not None and not actor.sees(found[0])):
            raise NotFound(f"there is no snapshot {sha256}")
        return found[1]

    async def of_thing(self, thing_id: str, limit: int = 100) -> list[dict[str, Any]]:
        check_thing_id(thing_id)
        rows = await self.store.read(lambda conn: snapshots_repo.of_thing(conn, thing_id, limit))
        return [{"sha256": s, "taken_at": clock.to_rfc3339(us)} for s, us in rows]


def check_reason(reason: object) -> str | None:
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise InvalidInput(f"reason must be text of at most {MAX_REASON} characters")
    return reason


def take_in(tx: WriteTx, ctx: Context, thing_id: str, reason: str | None) -> dict[str, Any]:
    """Inside a unit of work: snapshot the Thing as it is in this transaction and journal it."""
    thing = tx.existing(thing_id)
    now = tx.ts_us
    born = clock.parse_rfc3339(thing.created_at)
    credentials = [
        {
            "id": row.id,
            "type": row.type,
            "created_at": clock.to_rfc3339(row.created_us),
            "revoked_at": None if row.revoked_us is None else clock.to_rfc3339(row.revoked_us),
        }
        for row in credentials_repo.of_thing(tx.conn, thing_id)
        if row.created_us >= born
    ]
    events = journal_repo.of_thing(
        tx.conn,
        thing_id,
        after_seq=0,
        since_us=now - JOURNAL_WINDOW_US,
        until_us=None,
        limit=MAX_JOURNAL_EVENTS,
    )
    telemetry = {
        key: {
            "ts": clock.to_rfc3339(ts),
            "value": _value(num, value),
        }
        for key, ts, num, value in telemetry_repo.latest(tx.conn, thing_id)
    }
    document = {
        "format": FORMAT,
        "thing_id": thing_id,
        "taken_at": clock.to_rfc3339(now),
        "taken_by": ctx.actor.subject,
        "reason": reason,
        "thing": thing.to_dict(now),
        "credentials": credentials,
        "journal": {"since": clock.to_rfc3339(now - JOURNAL_WINDOW_US), "events": events},
        "telemetry_latest": telemetry,
    }
    body = orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()
    digest = hashlib.sha256(body.encode()).hexdigest()
    snapshots_repo.insert_snapshot(tx.conn, digest, thing_id, now, body)
    change(tx, ctx, thing, thing_id, ev.SNAPSHOT_TAKEN, {"sha256": digest, "reason": reason})
    return {"sha256": digest, "thing_id": thing_id, "taken_at": tx.now, "seq": tx.head.seq}


def _value(num: float | None, text: str | None) -> Any:
    if num is not None:
        return num
    return None if text is None else orjson.loads(text)
