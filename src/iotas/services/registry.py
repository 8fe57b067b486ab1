"""Things and their twins: commands that validate, then record an event and fold it.

Each public method is one transaction: a unit of work (a plain function) handed to the
store, holding the read, the event and the write together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from functools import partial

from iotas.domain import clock, merge_patch, td
from iotas.domain import journal as ev
from iotas.domain import registration as reg
from iotas.domain.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from iotas.domain.ids import check_thing_id
from iotas.domain.merge_patch import JSONObject
from iotas.domain.query import parse as parse_query
from iotas.domain.things import Thing, check_not_quarantined, validate_patch, validate_record
from iotas.domain.twin import Side
from iotas.services.changes import change, changed
from iotas.services.context import Context
from iotas.services.invocations import cancel_open_in
from iotas.store import directory_repo, things_repo
from iotas.store.query_sql import compile_query
from iotas.store.store import Store, WriteTx


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def get(self, thing_id: str) -> Thing:
        check_thing_id(thing_id)
        thing = await self.store.read(lambda conn: things_repo.get(conn, thing_id))
        if thing is None:
            raise NotFound(f"there is no Thing {thing_id!r}")
        return thing

    async def get_many(self, ids: list[str]) -> dict[str, Thing]:
        return await self.store.read(lambda conn: things_repo.get_many(conn, ids))

    async def select(
        self,
        q: str | None,
        *,
        limit: int,
        after_id: str | None,
        namespaces: tuple[str, ...] | None = None,
    ) -> list[Thing]:
        """Up to `limit` Things matching the query, in id order, after `after_id`, within
        `namespaces` (all if None)."""
        where = None
        if q:
            node = parse_query(q)
            where = compile_query(
                node, dialect=self.store.dialect, now_us=clock.now_us(), namespaces=namespaces
            )
        return await self.store.read(
            lambda conn: things_repo.page(conn, where, after_id, limit, namespaces)
        )

    async def create(self, ctx: Context, body: object) -> Thing:
        if not isinstance(body, dict):
            raise InvalidInput("a Thing must be a JSON object with at least id and kind")
        thing_id = check_thing_id(body.get("id"))
        ctx.actor.may_create(thing_id)
        record = validate_record(body)
        check_description(thing_id, record["description"])

        def unit(tx: WriteTx) -> Thing:
            return create_in(tx, ctx, thing_id, record)

        return await self.store.write(unit)

    async def patch(self, ctx: Context, thing_id: str, patch: object) -> Thing:
        check_thing_id(thing_id)
        valid_patch = validate_patch(patch)

        def unit(tx: WriteTx) -> Thing:
            before = tx.existing(thing_id)
            current = before.record()
            new_record = validate_record(merge_patch.apply(current, valid_patch))
            effective = merge_patch.effective(current, valid_patch)
            if "links" in effective:
                # Links are normalised (duplicates dropped): journal what will stand.
                effective["links"] = new_record["links"]
                if merge_patch.same(effective["links"], current["links"]):
                    del effective["links"]
            if not effective:
                return before
            if "description" in effective:
                check_registered_description(tx, thing_id, new_record["description"])
            return changed(tx, ctx, before, thing_id, ev.THING_UPDATED, effective)

        return await self.store.write(unit)

    async def put_description(
        self,
        ctx: Context,
        thing_id: str,
        description: JSONObject,
        *,
        kind: str,
        attributes: JSONObject | None = None,
        registering: Callable[[WriteTx, Thing | None, Thing], None] | None = None,
    ) -> tuple[Thing, bool]:
        """Create the Thing with this Thing Description (and, only then, these attributes),
        or replace the TD of the existing one (journaled as the merge patch between the two).
        Returns the Thing and whether it was created.

        `registering` is the directory's or the WoT adoption's: the caller has validated the
        TD as a TD itself (one registered or adopted is never a native Thing's model), and
        its function runs in the same transaction once the Thing is written, with the Thing
        before (None) and after, even when nothing changed; raising there undoes the whole
        write."""
        check_thing_id(thing_id)
        ctx.actor.may_create(thing_id)
        record = validate_record(
            {"kind": kind, "description": description, "attributes": attributes}
        )
        if registering is None:
            check_description(thing_id, record["description"])

        def unit(tx: WriteTx) -> tuple[Thing, bool]:
            before = tx.thing(thing_id)
            thing, created = write(tx, before)
            if registering is not None:
                registering(tx, before, thing)
            return thing, created

        def write(tx: WriteTx, before: Thing | None) -> tuple[Thing, bool]:
            if before is None:
                return changed(tx, ctx, None, thing_id, ev.THING_CREATED, record), True
            patch = merge_patch.diff(before.description or {}, record["description"])
            if before.description is None:
                patch = {"description": record["description"]}
            elif patch:
                patch = {"description": patch}
            if not patch:
                return before, False
            return changed(tx, ctx, before, thing_id, ev.THING_UPDATED, patch), False

        return await self.store.write(unit)

    async def delete(self, ctx: Context, thing_id: str) -> None:
        check_thing_id(thing_id)

        def unit(tx: WriteTx) -> None:
            before = tx.existing(thing_id)
            cancel_open_in(tx, ctx, thing_id, f"the Thing {thing_id} was deleted")
            change(tx, ctx, before, thing_id, ev.THING_DELETED, before=before.to_dict())

        await self.store.write(unit)

    async def patch_twin(
        self,
        ctx: Context,
        thing_id: str,
        side: Side,
        patch: object,
        *,
        if_match: Collection[int] | None = None,
    ) -> Thing:
        check_thing_id(thing_id)
        if not isinstance(patch, dict):
            raise InvalidInput(f"a {side} patch must be a JSON object (RFC 7396 merge patch)")
        try:
            merge_patch.check_json(patch, side)
        except ValueError as exc:
            raise InvalidInput(str(exc), field=side) from None
        type_ = ev.DESIRED_CHANGED if side == "desired" else ev.REPORTED_CHANGED

        def unit(tx: WriteTx) -> Thing:
            before = tx.existing(thing_id)
            if side == "desired":
                check_not_quarantined(before, "changing its desired state")
            if if_match is not None and before.twin.version not in if_match:
                raise PreconditionFailed(
                    f"the twin of {thing_id!r} is at version {before.twin.version}, "
                    f"not {' or '.join(map(str, sorted(if_match)))}: read it again and retry",
                    current_version=before.twin.version,
                )
            document = before.twin.desired if side == "desired" else before.twin.reported
            effective = merge_patch.effective(document, patch)
            if not effective:
                return before
            return changed(tx, ctx, before, thing_id, type_, effective)

        return await self.store.write(unit)

    async def patch_desired_where(
        self, ctx: Context, q: str, patch: object, *, page: int = 250
    ) -> tuple[int, int]:
        """Apply one desired-state merge patch to every Thing the query selects, each change
        journaled as usual. Returns how many Things matched and how many changed.

        A page of Things is selected and changed in one unit of work, inside the write
        transaction: the selection is never stale (a Thing deleted meanwhile is not matched),
        and the bulk costs a few units instead of one per Thing. One unit per Thing made it
        superlinear: each page waited behind the work its own changes woke (the WoT workers'
        reads and writes queue on the same readers and writer), so 10x the Things took 32x
        as long. A quarantined Thing matches but does not change (its desired state is
        frozen)."""
        if not q.strip():
            raise InvalidInput("a bulk change needs a query (q) naming the Things it is for")
        if not isinstance(patch, dict):
            raise InvalidInput("a desired patch must be a JSON object (RFC 7396 merge patch)")
        try:
            merge_patch.check_json(patch, "desired")
        except ValueError as exc:
            raise InvalidInput(str(exc), field="desired") from None
        where = compile_query(
            parse_query(q),
            dialect=self.store.dialect,
            now_us=clock.now_us(),
            namespaces=ctx.actor.namespaces,
        )
        namespaces = ctx.actor.namespaces

        def unit(tx: WriteTx, after_id: str | None) -> tuple[int, int, str | None]:
            selected = things_repo.page(tx.conn, where, after_id, page, namespaces)
            changed = 0
            for before in selected:  # read in this transaction: its current state
                if before.quarantine is not None:
                    continue
                if desired_in(tx, ctx, before, patch) is not before:
                    changed += 1
            return len(selected), changed, selected[-1].id if selected else None

        matched = changed = 0
        after_id: str | None = None
        while True:
            count, done, after_id = await self.store.write(partial(unit, after_id=after_id))
            matched, changed = matched + count, changed + done
            if count < page:
                return matched, changed

    async def set_connected(self, ctx: Context, thing_id: str, connected: bool) -> Thing:
        """Presence from the Thing's birth or last will; journaled only when it changes."""
        check_thing_id(thing_id)
        type_ = ev.THING_CONNECTED if connected else ev.THING_DISCONNECTED

        def unit(tx: WriteTx) -> Thing:
            before = tx.existing(thing_id)
            if before.connected == connected:
                return before
            after = change(tx, ctx, before, thing_id, type_)
            assert after is not None
            return after

        return await self.store.write(unit)

    async def disconnect_all(self, ctx: Context) -> int:
        """Mark every connected Thing disconnected (journaled): what the embedded broker does
        when it starts, since no connection survives the process that held it (after a crash
        there was no disconnect to record). Returns how many there were."""
        count, after_id = 0, None
        while page := await self.select("connected == true", limit=1000, after_id=after_id):
            await asyncio.gather(*(self.set_connected(ctx, t.id, False) for t in page))
            count, after_id = count + len(page), page[-1].id
        return count

    async def record_read(
        self,
        ctx: Context,
        thing_id: str,
        reported: JSONObject,
        *,
        seen_us: int,
        presence: Context | None = None,
    ) -> Thing:
        """An adapter read the Thing: the reported change (if any), `last_seen` and, with
        `presence` (whose context journals it), that the Thing is connected, in one
        transaction rather than three."""
        check_thing_id(thing_id)
        try:
            merge_patch.check_json(reported, "reported")
        except ValueError as exc:
            raise InvalidInput(str(exc), field="reported") from None

        def unit(tx: WriteTx) -> Thing:
            after = tx.existing(thing_id)
            effective = merge_patch.effective(after.twin.reported, reported)
            if effective:
                after = changed(tx, ctx, after, thing_id, ev.REPORTED_CHANGED, effective)
            if presence is not None and not after.connected:
                connected = change(tx, presence, after, thing_id, ev.THING_CONNECTED)
                assert connected is not None
                after = connected
            tx.touch([thing_id], seen_us)  # last: a row written after it would move it back
            return after

        return await self.store.write(unit)

    async def record_event(self, ctx: Context, thing_id: str, name: str, data: object) -> None:
        """Something the Thing says happened (`things/{id}/events/{name}`): journaled as is."""
        await self._note(ctx, thing_id, ev.THING_EVENT, {"name": name, "data": data})

    async def record_attempt(self, ctx: Context, thing_id: str, attempt: JSONObject) -> None:
        """What an adapter did to the Thing through its own API, and how it went."""
        await self._note(ctx, thing_id, ev.ADAPTER_ATTEMPT, attempt)

    async def record_write(
        self,
        ctx: Context,
        thing_id: str,
        attempt: JSONObject,
        *,
        reported: JSONObject,
        reporter: Context,
        seen_us: int,
    ) -> Thing:
        """An adapter wrote to the Thing and read back what it holds: the attempt, the
        reported change (if any) and `last_seen` in one transaction, not three."""
        check_thing_id(thing_id)
        try:
            merge_patch.check_json(attempt, "attempt")
            merge_patch.check_json(reported, "reported")
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

        def unit(tx: WriteTx) -> Thing:
            before = tx.existing(thing_id)
            changed(tx, ctx, before, thing_id, ev.ADAPTER_ATTEMPT, attempt)
            after = before
            effective = merge_patch.effective(before.twin.reported, reported)
            if effective:
                after = changed(tx, reporter, before, thing_id, ev.REPORTED_CHANGED, effective)
            tx.touch([thing_id], seen_us)
            return after

        return await self.store.write(unit)

    async def _note(self, ctx: Context, thing_id: str, type_: str, body: JSONObject) -> None:
        """Journal an event that changes no state."""
        check_thing_id(thing_id)
        try:
            merge_patch.check_json(body, type_)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

        def unit(tx: WriteTx) -> None:
            change(tx, ctx, tx.existing(thing_id), thing_id, type_, body)

        await self.store.write(unit)

    async def touch(self, thing_ids: list[str], seen_us: int) -> None:
        """Record that these Things were heard from (not journaled: every message does it)."""
        await self.store.write(lambda tx: tx.touch(thing_ids, seen_us))


def check_description(thing_id: str, description: JSONObject | None) -> None:
    """A stored description is a Thing Description with forms of its own (a third-party
    Thing's, validated as given) or the model of a native Thing (then the TD that iotas
    generates from it must validate)."""
    if description is None:
        return
    if td.has_own_forms(description):
        td.validate_td(description)
        return
    model = Thing(id=thing_id, kind="thing", description=description)
    td.validate_td(td.native_td(model, http_base="http://localhost"))


def check_registered_description(
    tx: WriteTx, thing_id: str, description: JSONObject | None
) -> None:
    """`check_description`, except for a TD registered through the directory: that is a TD
    as registered (never a model), so it is checked as one, and its registration is
    modified now."""
    registration = directory_repo.get(tx.conn, thing_id)
    if registration is None:
        check_description(thing_id, description)
        return
    td.validate_td(description)
    renewed = reg.registered(registration, registration.requested(), tx.ts_us)
    directory_repo.put(tx.conn, thing_id, renewed)


def create_in(tx: WriteTx, ctx: Context, thing_id: str, record: JSONObject) -> Thing:
    """Inside a unit: create a Thing from a validated record (journaled) and return it."""
    if tx.thing(thing_id) is not None:
        raise Conflict(f"the Thing {thing_id!r} exists already")
    return changed(tx, ctx, None, thing_id, ev.THING_CREATED, record)


def desired_in(tx: WriteTx, ctx: Context, thing: Thing, patch: JSONObject) -> Thing:
    """Inside a unit: apply a desired-state merge patch (already checked with
    `merge_patch.check_json`) to `thing` (journaled) and return the Thing after it."""
    effective = merge_patch.effective(thing.twin.desired, patch)
    if not effective:
        return thing
    return changed(tx, ctx, thing, thing.id, ev.DESIRED_CHANGED, effective)
