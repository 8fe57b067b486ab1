"""Creating the simulated fleet's Things and device credentials through the operator API."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from iotas.sdk import ApiError, Client
from iotas.sim.actions import MODEL
from iotas.sim.plan import SimThing

CAUSE = "iotas simulate"

Progress = Callable[[int, int], None]


@dataclass(slots=True)
class Provisioned:
    created: int = 0
    reused: int = 0
    secrets: dict[str, str] = field(default_factory=dict)


async def create_password(client: Client, thing_id: str) -> str:
    """A new password credential for the Thing; returns its secret (shown only once)."""
    # Prefer the SDK method; until it exists, the same route through the client's helper.
    create = getattr(client, "create_credential", None)
    if callable(create):
        result: Any = await create(thing_id)
    else:
        path = f"/api/v1/things/{quote(thing_id, safe=':')}/credentials"
        result = await client._json("POST", path, body={"type": "password"})
    secret = result.get("secret") if isinstance(result, dict) else None
    if not isinstance(secret, str) or not secret:
        raise RuntimeError(f"the server returned no secret for {thing_id}'s new credential")
    return secret


async def provision_one(client: Client, thing: SimThing, result: Provisioned) -> None:
    try:
        await client.create_thing(
            thing.id,
            thing.kind,
            attributes=thing.attributes,
            labels=thing.labels,
            description=MODEL,
            cause=CAUSE,
        )
        result.created += 1
    except ApiError as exc:
        if exc.status != 409:
            raise
        # Created by an earlier run: kept as it is, with today's model of its actions.
        await client.patch_thing(thing.id, {"description": MODEL}, cause=CAUSE)
        result.reused += 1
    result.secrets[thing.id] = await create_password(client, thing.id)


async def provision(
    client: Client,
    things: Sequence[SimThing],
    *,
    concurrency: int = 8,
    progress: Progress | None = None,
) -> Provisioned:
    """Create the Things that are missing and a new password credential for each; a few
    requests at a time (the API is the limit, not the client)."""
    result = Provisioned()
    pending = iter(things)
    done = 0

    async def worker() -> None:
        nonlocal done
        for thing in pending:
            await provision_one(client, thing, result)
            done += 1
            if progress is not None:
                progress(done, len(things))

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(things))))]
    try:
        # The first failure (an ApiError the CLI turns into an exit code) ends the others.
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    return result
