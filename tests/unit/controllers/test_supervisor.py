"""`Controllers`: a cluster-wide controller runs only while its node holds the lease, and
stops when the lease is lost; a node that does not hold it takes it when it comes free. The
leases here are a fake shared by two supervisors ("nodes"); the real ones (PostgreSQL
advisory locks) are tested with two `iotas up` processes (tests/e2e/test_controller_takeover.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from iotas.controllers.supervisor import Controllers, Loop


class SharedLocks:
    """Advisory locks as PostgreSQL keeps them: one holder per name, let go when the holder's
    session ends."""

    def __init__(self) -> None:
        self.holders: dict[str, str] = {}


class FakeLeases:
    def __init__(self, locks: SharedLocks, session: str) -> None:
        self.locks = locks
        self.session = session
        self.alive = True

    async def try_take(self, name: str) -> bool:
        if not self.alive:
            return False
        return self.locks.holders.setdefault(name, self.session) == self.session

    async def still_held(self) -> bool:
        return self.alive

    async def give_up(self, name: str) -> None:
        if self.locks.holders.get(name) == self.session:
            del self.locks.holders[name]

    async def close(self) -> None:
        self.die()

    def die(self) -> None:
        """The session ends (the node was killed, or cut off): its locks go."""
        self.alive = False
        for name in [n for n, s in self.locks.holders.items() if s == self.session]:
            del self.locks.holders[name]


async def _until(check: Callable[[], bool], within: float = 5.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), within)


def _worker(running: dict[str, bool], node: str) -> Loop:
    async def work() -> None:
        running[node] = True
        try:
            await asyncio.Event().wait()
        finally:
            running[node] = False

    return Loop("reconciler", work, cluster_wide=True)


async def test_one_node_leads_and_the_other_takes_over_when_it_dies() -> None:
    locks = SharedLocks()
    first_leases, second_leases = FakeLeases(locks, "a"), FakeLeases(locks, "b")
    first = Controllers(first_leases, try_every=0.05, check_every=0.05)
    second = Controllers(second_leases, try_every=0.05, check_every=0.05)
    running: dict[str, bool] = {}
    await first.start(_worker(running, "a"))
    await second.start(_worker(running, "b"))
    await _until(lambda: running.get("a", False))
    await asyncio.sleep(0.2)  # several tries of the second node
    assert first.leading() == ["reconciler"] and second.leading() == []
    assert not running.get("b", False)

    first_leases.die()
    await _until(lambda: running.get("b", False) and not running.get("a", True))
    assert second.leading() == ["reconciler"] and first.leading() == []
    await first.stop_all()
    await second.stop_all()
    assert running == {"a": False, "b": False}


async def test_a_node_controller_runs_everywhere_without_a_lease() -> None:
    locks = SharedLocks()
    nodes = [Controllers(FakeLeases(locks, s)) for s in ("a", "b")]
    running: dict[str, bool] = {}
    for node, name in zip(nodes, ("a", "b"), strict=True):
        await node.start(Loop("mirror", _worker(running, name).run))
    await _until(lambda: running.get("a", False) and running.get("b", False))
    assert locks.holders == {}
    for node in nodes:
        assert node.running() == ["mirror"] and node.leading() == []
        await node.stop_all()
