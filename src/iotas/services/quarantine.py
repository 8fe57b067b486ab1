"""Quarantine: a Thing suspected of compromise is cut off and its state kept as evidence.

Quarantining is one unit of work: a forensic snapshot of the Thing as it was found (taken
first, so the evidence is the state before iotas touched it), every active credential
revoked, and `thing_quarantined` journaled with the reason and the snapshot's sha256. Once it
has committed, the credential service's revocation listeners cut the device's live session.
While quarantined, the Thing's desired state is frozen, actions and property writes to it are
refused and it cannot be given credentials; releasing it is the only way back, and issues a
new credential in the same unit of work, so the old device identity never returns.
"""

from __future__ import annotations

from typing import Any

from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, InvalidInput, NotFound
from iotas.domain.ids import check_thing_id
from iotas.domain.things import Thing
from iotas.services.changes import changed
from iotas.services.context import Context
from iotas.services.credentials import (
    CredentialService,
    add_in,
    authorize,
    revoke_all_in,
    to_dict,
)
from iotas.services.invocations import cancel_open_in
from iotas.services.snapshots import check_reason, take_in
from iotas.store import things_repo
from iotas.store.store import Store, WriteTx


class QuarantineService:
    def __init__(self, store: Store, credentials: CredentialService) -> None:
        self.store = store
        self.credentials = credentials

    async def quarantine(self, ctx: Context, thing_id: str, body: object) -> dict[str, Any]:
        check_thing_id(thing_id)
        authorize(ctx.actor, thing_id, write=True)
        if not isinstance(body, dict) or set(body) != {"reason"}:
            raise InvalidInput('send {"reason": "why the Thing is quarantined"}')
        reason = check_reason(body["reason"])
        if not reason or not reason.strip():
            raise InvalidInput("a quarantine needs a reason", field="reason")

        def unit(tx: WriteTx) -> Thing:
            before = tx.existing(thing_id)
            if before.quarantine is not None:
                raise Conflict(
                    f"{thing_id!r} is quarantined already (since {before.quarantine['since']})"
                )
            snapshot = take_in(tx, ctx, thing_id, f"quarantine: {reason}")
            revoked = revoke_all_in(tx, ctx, before)
            cancel_open_in(tx, ctx, thing_id, f"the Thing {thing_id} was quarantined: {reason}")
            patch = {"reason": reason, "snapshot": snapshot["sha256"]}
            return changed(tx, ctx, revoked, thing_id, ev.THING_QUARANTINED, patch)

        try:
            return (await self.store.write(unit)).to_dict()
        finally:
            # Whether or not it committed: forgetting costs a hash at the next connect at most.
            self.credentials.forget(thing_id)

    async def release(self, ctx: Context, thing_id: str, body: object) -> dict[str, Any]:
        """Release the Thing with a new credential (`{"credential": {"type": ...}}`), which
        the answer holds once; the desired state thaws, actions reach it again."""
        check_thing_id(thing_id)
        authorize(ctx.actor, thing_id, write=True)
        if not isinstance(body, dict) or set(body) != {"credential"}:
            raise InvalidInput(
                'releasing a Thing needs a new credential: send {"credential": {"type": '
                '"x509"}} (or "password", or x509 with a "csr")'
            )
        before_check = await self.store.read(lambda conn: things_repo.get(conn, thing_id))
        if before_check is None:
            raise NotFound(f"there is no Thing {thing_id!r}")
        if before_check.quarantine is None:
            raise Conflict(f"{thing_id!r} is not quarantined")
        new = await self.credentials.prepare(thing_id, body["credential"])

        def unit(tx: WriteTx) -> dict[str, Any]:
            before = tx.existing(thing_id)
            if before.quarantine is None:
                raise Conflict(f"{thing_id!r} is not quarantined")
            patch = {"credential": new.id}
            released = changed(tx, ctx, before, thing_id, ev.THING_RELEASED, patch)
            row, after = add_in(tx, ctx, released, new)
            return {"thing": after.to_dict(), "credential": {**to_dict(row), **new.shown_once}}

        return await self.store.write(unit)
