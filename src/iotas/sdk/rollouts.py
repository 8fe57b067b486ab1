"""Rollouts in the operator SDK: `Client.rollouts` (docs/commands.md).

async with Client() as iotas:
    made = await iotas.rollouts.create({
        "name": "reboot plant 7",
        "target": 'attributes.site == "plant-7"',
        "change": {"type": "action", "action": "reboot", "ttl": 600},
        "waves": [{"count": 10}, {"percent": 50, "wait": 300}],
        "failure_threshold": {"percent": 5, "min_executed": 20},
    })
    await iotas.rollouts.pause(made["id"])
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from iotas.sdk._http import cause_header

if TYPE_CHECKING:
    from iotas.sdk.client import Page

Json = dict[str, Any]
PATH = "/api/v1/rollouts"


class Rollouts:
    """The rollout routes, over a `Client`'s connection."""

    def __init__(
        self,
        json: Callable[..., Awaitable[Json]],
        page: Callable[[str, dict[str, Any]], Awaitable[Page]],
    ) -> None:
        self._json = json
        self._page = page

    async def create(self, spec: Json, *, cause: str | None = None) -> Json:
        """Start a rollout (`spec`: name, target, change, waves, thresholds...)."""
        return await self._json("POST", PATH, body=spec, headers=_cause(cause))

    async def get(self, rollout_id: str) -> Json:
        """The rollout with its counts per status and per wave."""
        return await self._json("GET", _one(rollout_id))

    async def list(
        self, *, status: Sequence[str] | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        params = {"status": ",".join(status) if status else None, "limit": limit, "cursor": cursor}
        return await self._page(PATH, params)

    async def things(
        self,
        rollout_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page:
        """The rollout's Things in rollout order (of `status`: pending, in_flight, ...)."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        return await self._page(f"{_one(rollout_id)}/things", params)

    async def pause(self, rollout_id: str, *, cause: str | None = None) -> Json:
        return await self._command(rollout_id, "pause", cause)

    async def resume(self, rollout_id: str, *, cause: str | None = None) -> Json:
        return await self._command(rollout_id, "resume", cause)

    async def cancel(self, rollout_id: str, *, cause: str | None = None) -> Json:
        return await self._command(rollout_id, "cancel", cause)

    async def _command(self, rollout_id: str, command: str, cause: str | None) -> Json:
        return await self._json("POST", f"{_one(rollout_id)}/{command}", headers=_cause(cause))


def _one(rollout_id: str) -> str:
    return f"{PATH}/{quote(rollout_id, safe='')}"


def _cause(cause: str | None) -> dict[str, str]:
    return cause_header(cause)
