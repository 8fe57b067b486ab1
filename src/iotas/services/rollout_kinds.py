"""Change kinds: what a rollout carries to each Thing, and how the engine starts and watches
it. The engine (`services.rollouts`) knows nothing of actions, releases or profiles; each is
a `ChangeKind` in the `ChangeKinds` registry, keyed by the `type` of the rollout's change.

A kind:
- `validate(change)` checks the rollout's change (InvalidInput naming `change/...`) and
  returns it as stored;
- `start_in(tx, ctx, rollout, thing, now_us)` starts the change on one Thing inside the
  engine's unit of work, the one that marks the Thing in flight with the ref it returns, so
  a crash leaves both or neither. It raises `Skip` when the Thing cannot take the change
  now but may later (a full queue), any other IotasError when it never will (the Thing is
  quarantined, the action unknown): the Thing then fails with that error;
- `observe(refs)` says how the started changes are going, for many refs at once;
- `stop(ctx, refs)` stops started changes where it still can (the rollout was cancelled or
  a Thing timed out); best effort, after the engine's unit;
- `journal_kind`: the journal kind whose events' record ids are its refs (so the engine
  observes a change as soon as it moves), or None: then it observes every in-flight ref
  each round;
- `undo_in`, where a change can be undone (releases and profiles roll back): None here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from iotas.domain.errors import InvalidInput, IotasError
from iotas.domain.things import Thing
from iotas.services.context import Context
from iotas.store.rollouts_repo import RolloutRow
from iotas.store.store import WriteTx

State = Literal["pending", "succeeded", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Outcome:
    state: State
    # Why it failed ({"code", "message"}) or what it gave back; kept with the Thing.
    detail: dict[str, Any] | None = None


PENDING = Outcome("pending")


class Skip(IotasError):
    """Not now (the Thing's queue is full, say): the Thing stays pending for a later round."""

    status = 429
    title = "Not now"
    type_slug = "not-now"


class ChangeKind(Protocol):
    name: str
    journal_kind: str | None

    def validate(self, change: object) -> dict[str, Any]: ...

    def start_in(
        self, tx: WriteTx, ctx: Context, rollout: RolloutRow, thing: Thing, now_us: int
    ) -> str: ...

    async def observe(self, refs: list[str]) -> dict[str, Outcome]: ...

    async def stop(self, ctx: Context, refs: list[str]) -> None: ...


class ChangeKinds:
    """The kinds a node knows, by name; `register` adds one (a release kind, a test's)."""

    def __init__(self, kinds: Iterable[ChangeKind] = ()) -> None:
        self._kinds: dict[str, ChangeKind] = {}
        for kind in kinds:
            self.register(kind)

    def register(self, kind: ChangeKind) -> None:
        self._kinds[kind.name] = kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def get(self, name: str) -> ChangeKind:
        return self._kinds[name]

    def validate(self, change: object) -> dict[str, Any]:
        """The rollout's change, checked by its kind."""
        if not isinstance(change, dict) or not isinstance(change.get("type"), str):
            raise InvalidInput(
                f'change must be a JSON object with a "type" (one of {", ".join(self.names())})',
                field="change",
            )
        kind = self._kinds.get(change["type"])
        if kind is None:
            raise InvalidInput(
                f"change/type {change['type'][:60]!r} is not a change kind this installation "
                f"knows (one of {', '.join(self.names())})",
                field="change/type",
            )
        return kind.validate(change)


def error_of(exc: IotasError) -> dict[str, Any]:
    """How a Thing that could not start records why."""
    return {"code": exc.type_slug, "message": exc.detail}
