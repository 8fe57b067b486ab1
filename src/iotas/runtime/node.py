"""A node: its services, the adapters of the table and the controllers, started in order and
stopped in reverse."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields

from iotas.adapters.base import Adapters, Setup
from iotas.controllers.supervisor import Controllers
from iotas.runtime.controllers import node_controllers
from iotas.runtime.table import ADAPTERS
from iotas.services.bundle import Services, open_services
from iotas.settings import Settings
from iotas.store.leases import leases_for

log = logging.getLogger("iotas")


@dataclass(frozen=True, slots=True)
class Runtime(Services):
    """The services, and what runs over them: the adapters (found by type:
    `rt.adapters.get(WotThings)`) and the controllers (`rt.controllers.leading()`)."""

    adapters: Adapters
    controllers: Controllers


async def open_runtime(settings: Settings) -> Runtime:
    """Open the database, migrate it and build the services; nothing is started (the demo and
    tests use it as it is; `running` starts the rest)."""
    services = await open_services(settings)
    return Runtime(
        **{f.name: getattr(services, f.name) for f in fields(Services)},
        adapters=Adapters(),
        controllers=Controllers(leases_for(services.store)),
    )


@asynccontextmanager
async def running(
    settings: Settings, adapters: Sequence[tuple[str, Setup]] = ADAPTERS
) -> AsyncIterator[Runtime]:
    """Open the runtime, ensure the admin token, start the `adapters` (the table's) in order
    and the node's controllers; on leaving, stop them in reverse and close the store."""
    rt = await open_runtime(settings)
    try:
        await _ensure_admin(rt)
        for name, setup in adapters:
            adapter = setup(rt, rt.controllers)
            if adapter is None:
                log.debug("adapter %s: not configured", name)
                continue
            rt.adapters.add(adapter)  # before it starts: a start that fails half way is undone
            await adapter.start()
        for controller in node_controllers(rt):
            await rt.controllers.start(controller)
        yield rt
    finally:
        for adapter in reversed(list(rt.adapters)):
            await adapter.stop()
        rt.adapters.clear()
        await rt.controllers.stop_all()
        await rt.store.dispose()


async def _ensure_admin(rt: Runtime) -> None:
    settings = rt.settings
    admin = await rt.auth.ensure_admin(settings.admin_token, settings.admin_token_path)
    if admin.created:
        # Shown once; afterwards only the 0600 file has it.
        print(
            f"iotas: created the admin token (also in {settings.admin_token_path}):\n"
            f"  {admin.token}",
            flush=True,
        )
