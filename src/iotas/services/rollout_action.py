"""The `action` change kind: a rollout invokes one action with one input on each Thing.

Starting is `Invocations.create_in` in the engine's unit (the invocation carries the
rollout's id, and its journal entry is the record of the start); a full queue (429) leaves
the Thing pending for a later round. Outcomes are the invocations' statuses, read for many
at once (`Invocations.many`), as soon as the journal says one moved. Stopping cancels the
invocations still cancellable; one a device already runs finishes and is recorded.
"""

from __future__ import annotations

from typing import Any, Final

from iotas.domain import invocations as inv
from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, InvalidInput, NotFound, TooManyRequests
from iotas.domain.invocations import Invocation, Status
from iotas.domain.merge_patch import check_json
from iotas.domain.things import Thing
from iotas.services.context import Context
from iotas.services.invocations import Invocations
from iotas.services.rollout_kinds import Outcome, Skip
from iotas.store.rollouts_repo import RolloutRow
from iotas.store.store import WriteTx

MEMBERS: Final = frozenset({"type", "action", "input", "ttl"})


class ActionKind:
    name = "action"
    journal_kind: str | None = ev.INVOCATION

    def __init__(self, invocations: Invocations) -> None:
        self.invocations = invocations

    def validate(self, change: object) -> dict[str, Any]:
        assert isinstance(change, dict)
        unknown = sorted(set(change) - MEMBERS)
        if unknown:
            raise InvalidInput(
                f"unknown member(s) {', '.join(unknown)} in an action change "
                '({"type": "action", "action", "input", "ttl"})',
                field=f"change/{unknown[0]}",
            )
        action = change.get("action")
        if not isinstance(action, str) or not 1 <= len(action) <= 200:
            raise InvalidInput("change/action must name the action (1-200 characters)",
                               field="change/action")  # fmt: skip
        try:
            check_json(change.get("input"), "input")
            inv.ttl_us(change.get("ttl"))
        except InvalidInput as exc:
            raise InvalidInput(f"change/{exc.detail}", field="change/ttl") from None
        except ValueError as exc:
            raise InvalidInput(f"change/input: {exc}", field="change/input") from None
        return {
            "type": self.name,
            "action": action,
            "input": change.get("input"),
            "ttl": change.get("ttl"),
        }

    def start_in(
        self, tx: WriteTx, ctx: Context, rollout: RolloutRow, thing: Thing, now_us: int
    ) -> str:
        change = rollout.spec["change"]
        try:
            made = self.invocations.create_in(
                tx,
                ctx,
                thing,
                change["action"],
                change.get("input"),
                ttl_s=change.get("ttl"),
                rollout_id=rollout.id,
                now_us=now_us,
            )
        except TooManyRequests as exc:
            raise Skip(exc.detail) from None
        return made.id

    async def observe(self, refs: list[str]) -> dict[str, Outcome]:
        found = await self.invocations.many(refs)
        return {ref: outcome(found.get(ref)) for ref in refs}

    async def stop(self, ctx: Context, refs: list[str]) -> None:
        for ref in refs:
            try:
                await self.invocations.cancel(ctx, ref)
            except (Conflict, NotFound):
                continue  # final already, or gone: nothing to stop


def outcome(found: Invocation | None) -> Outcome:
    """A rollout's view of an invocation's status."""
    if found is None:
        return Outcome("failed", {"code": "not-found", "message": "the invocation is gone"})
    if found.status is Status.SUCCEEDED:
        return Outcome("succeeded", {"invocation": found.id, "output": found.output})
    if found.status is Status.CANCELLED:
        return Outcome("cancelled", {"invocation": found.id})
    if found.status in inv.FINAL:
        error = found.error or {
            "code": found.status.value,
            "message": f"the invocation {found.status}",
        }
        return Outcome(
            "failed", {"invocation": found.id, "status": found.status.value, "error": error}
        )
    return Outcome("pending")
