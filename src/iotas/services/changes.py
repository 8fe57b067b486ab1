"""The change path: every journaled change of every record goes through here.

A Thing changes only through `change` (journal the event, fold it, write the Thing, keep the
cache right: `WriteTx.change`); a token, claim or WoT binding records its event with
`record`, in the unit that writes its row. Both take who acted and why from the `Context`.
"""

from __future__ import annotations

from iotas.domain import journal as ev
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import Thing
from iotas.services.context import Context
from iotas.store.store import WriteTx


def change(
    tx: WriteTx,
    ctx: Context,
    state: Thing | None,
    thing_id: str,
    type_: str,
    patch: JSONObject | None = None,
    *,
    before: JSONObject | None = None,
) -> Thing | None:
    """Inside a unit: change the Thing (`state` as the unit read it; None: it does not exist
    yet) by one event. Returns the Thing after it, None once deleted."""
    return tx.change(
        state, thing_id, type_, actor=ctx.actor.subject, cause=ctx.cause, patch=patch, before=before
    )


def changed(
    tx: WriteTx, ctx: Context, state: Thing | None, thing_id: str, type_: str, patch: JSONObject
) -> Thing:
    """`change` for an event after which the Thing exists (anything but its deletion)."""
    after = change(tx, ctx, state, thing_id, type_, patch)
    assert after is not None
    return after


def record(
    tx: WriteTx, ctx: Context, kind: str, record_id: str, type_: str, patch: JSONObject
) -> ev.Event:
    """Inside a unit that writes a token, claim or binding row: journal what it did. `patch`
    identifies the record (id, prefix, fingerprint) and never holds a secret."""
    return tx.record(
        record_id, type_, actor=ctx.actor.subject, cause=ctx.cause, patch=patch, kind=kind
    )
