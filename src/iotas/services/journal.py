"""Reading the journal: the feed, per-Thing history, verification and time travel."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain.errors import NotFound
from iotas.domain.ids import check_thing_id
from iotas.domain.things import Thing
from iotas.store import journal_repo
from iotas.store.store import Store


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_seq": self.first_bad_seq,
            "reason": self.reason,
        }


class JournalService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def feed(
        self,
        after: int,
        limit: int,
        types: list[str] | None = None,
        namespaces: tuple[str, ...] | None = None,
        kinds: Collection[str] | None = (ev.THING,),
    ) -> list[dict[str, Any]]:
        """Events after seq `after`, of Things in `namespaces` (all if None), of these kinds
        of record (all if None; Things by default, which is what followers of the journal
        want)."""
        return await self.store.read(
            lambda conn: journal_repo.after(conn, after, limit, types, namespaces, kinds)
        )

    async def head_seq(self) -> int:
        seq, _ = await self.store.read(journal_repo.head)
        return seq

    async def head(self) -> dict[str, Any]:
        seq, digest, ts_us = await self.store.read(journal_repo.head_row)
        return {"seq": seq, "hash": digest, "ts": clock.to_rfc3339(ts_us) if seq else None}

    async def history(
        self,
        thing_id: str,
        *,
        after_seq: int,
        since_us: int | None,
        until_us: int | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        check_thing_id(thing_id)
        return await self.store.read(
            lambda conn: journal_repo.of_thing(
                conn,
                thing_id,
                after_seq=after_seq,
                since_us=since_us,
                until_us=until_us,
                limit=limit,
            )
        )

    async def thing_at(self, thing_id: str, at_us: int) -> Thing:
        """The Thing exactly as it was at the instant, rebuilt by folding its events."""
        check_thing_id(thing_id)
        events = await self.store.read(
            lambda conn: journal_repo.events_until(conn, thing_id, at_us)
        )
        thing = ev.fold(events)
        if thing is None:
            raise NotFound(f"the Thing {thing_id!r} did not exist at that instant")
        return thing

    async def verify(self) -> Verification:
        """Walk the chain from the start; name the first event that does not hold."""
        return await self.store.read(_verify)


def _verify(conn: Connection) -> Verification:
    checked = 0
    previous = ev.GENESIS_HASH
    head_seq, head_hash = journal_repo.head(conn)
    # Only up to the head as read: on PostgreSQL (read committed) each batch of the scan may
    # see events committed since, which belong to a later verification, not to this one.
    for seq, kind, record_id, type_, body, digest in journal_repo.scan(conn, up_to=head_seq):
        previous_hash = previous
        previous, broken = ev.check_link(checked + 1, previous_hash, seq, digest, body.encode())
        if broken is None and not _columns_match(body, kind, record_id, type_):
            broken = ev.ChainBreak(seq, "the indexed columns disagree with the event body")
        if broken is not None:
            return Verification(False, checked, broken.seq, broken.reason)
        checked += 1
    if checked != head_seq or (checked and previous != head_hash):
        return Verification(
            False,
            checked,
            checked + 1,
            f"the journal ends at seq {checked} but its head says {head_seq}: "
            "events were removed from the end",
        )
    return Verification(True, checked, None, None)


def _columns_match(body: str, kind: str, record_id: str, type_: str) -> bool:
    parsed = orjson.loads(body)
    return (
        isinstance(parsed, dict)
        and ev.kind_and_id(parsed) == (kind, record_id)
        and parsed.get("type") == type_
    )
