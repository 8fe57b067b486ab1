"""`iotas.sdk.Client` against the real API over loopback HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

import pytest

from iotas.sdk import ApiError, Client, ConnectionFailed
from support import LiveServer, free_port


@pytest.fixture
async def client(server: LiveServer) -> AsyncIterator[Client]:
    async with Client(server.url, server.token) as sdk:
        yield sdk


async def test_things_round_trip(client: Client) -> None:
    assert (await client.health())["status"] == "ok"
    gw = await client.create_thing("acme:gw-1", "gateway", cause="setup")
    pump = await client.create_thing(
        "acme:pump-1",
        "pump",
        attributes={"site": "plant-7"},
        labels={"tier": "edge"},
        links=[{"rel": "hosted-by", "target": gw["id"]}],
    )
    assert pump["links"] == [{"rel": "hosted-by", "target": "acme:gw-1"}]
    assert await client.get_thing("acme:pump-1") == pump

    patched = await client.patch_thing("acme:pump-1", {"labels": {"tier": "core"}})
    assert patched["labels"] == {"tier": "core"} and patched["revision"] == 2
    then = datetime.fromisoformat(pump["updated_at"].replace("Z", "+00:00"))
    assert (await client.get_thing("acme:pump-1", at=then))["labels"] == {"tier": "edge"}
    with pytest.raises(ValueError, match="timezone"):
        await client.get_thing("acme:pump-1", at=datetime(2026, 1, 1))

    page = await client.list_things('kind == "pump"')
    assert [t["id"] for t in page.items] == ["acme:pump-1"] and page.next is None

    await client.delete_thing("acme:gw-1", cause="decommissioned")
    with pytest.raises(ApiError) as caught:
        await client.get_thing("acme:gw-1")
    assert caught.value.status == 404 and str(caught.value).startswith("404 ")
    history = await client.history("acme:gw-1")
    assert [e["type"] for e in history.items] == ["thing_created", "thing_deleted"]
    assert [e["cause"] for e in history.items] == ["setup", "decommissioned"]


async def test_pages(client: Client) -> None:
    for n in range(5):
        await client.create_thing(f"acme:s-{n}", "sensor")
    first = await client.list_things(limit=2)
    assert len(first.items) == 2 and first.next
    second = await client.list_things(limit=2, cursor=first.next)
    assert {t["id"] for t in first.items}.isdisjoint(t["id"] for t in second.items)
    every = [t["id"] async for t in client.iter_things(page_size=2)]
    assert every == [f"acme:s-{n}" for n in range(5)]

    journal = await client.journal(limit=3)
    assert [e["seq"] for e in journal.items] == [1, 2, 3] and journal.next
    rest = await client.journal(3)
    assert [e["seq"] for e in rest.items] == [4, 5]
    assert (await client.verify_journal())["ok"] is True


async def test_twin_and_errors(client: Client, server: LiveServer) -> None:
    await client.create_thing("acme:p", "pump")
    twin = await client.set_desired("acme:p", {"speed": 1200}, cause="tuning")
    assert twin["status"] == "pending" and twin["delta"] == {"speed": 1200}
    with pytest.raises(ApiError) as stale:
        await client.set_desired("acme:p", {"speed": 1}, if_match=twin["version"] - 1)
    assert stale.value.status == 412
    await client.set_desired("acme:p", {"speed": 1300}, if_match=twin["version"])
    twin = await client.set_reported("acme:p", {"speed": 1300})
    assert twin["status"] == "in_sync"
    assert await client.get_twin("acme:p") == twin

    with pytest.raises(ApiError) as duplicate:
        await client.create_thing("acme:p", "pump")
    assert duplicate.value.status == 409
    with pytest.raises(ApiError) as invalid:
        await client.create_thing("no id", "pump")
    assert invalid.value.status == 400 and invalid.value.problem["detail"]
    await client.patch_thing("acme:p", {"labels": {"x": "y"}}, cause="naïve 100% – ok")
    last = (await client.history("acme:p")).items[-1]
    assert last["cause"] == "naïve 100% – ok"
    with pytest.raises(ValueError, match="printable"):
        await client.patch_thing("acme:p", {}, cause="line\nbreak")

    async with Client(server.url, "wrong") as stranger:
        with pytest.raises(ApiError) as denied:
            await stranger.get_twin("acme:p")
    assert denied.value.status == 401 and not isinstance(denied.value, ConnectionFailed)

    async with Client(f"http://127.0.0.1:{free_port()}", "t") as nobody:
        with pytest.raises(ConnectionFailed) as unreachable:
            await nobody.health()
        assert "cannot reach iotas" in str(unreachable.value)
        with pytest.raises(ConnectionFailed):
            await anext(nobody.events())


async def take(stream: AsyncIterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    out = []
    async with asyncio.timeout(10):
        async for event in stream:
            out.append(event)
            if len(out) == n:
                break
    return out


async def test_events_resume_after_a_seq(client: Client) -> None:
    for n in range(6):
        await client.create_thing(f"acme:e-{n}", "sensor")
    async with aclosing(client.events(after=0)) as stream:
        head = await take(stream, 4)
    async with aclosing(client.events(after=head[-1]["seq"])) as stream:
        tail = await take(stream, 2)
    seqs = [e["seq"] for e in head + tail]
    assert seqs == [1, 2, 3, 4, 5, 6]
    assert head + tail == (await client.journal()).items

    async with aclosing(client.events(types=["desired_changed"], after=0)) as stream:
        await client.set_desired("acme:e-3", {"x": 1})
        [changed] = await take(stream, 1)
    assert changed["type"] == "desired_changed" and changed["thing_id"] == "acme:e-3"


async def test_events_reconnect_without_loss_or_repeat(server: LiveServer) -> None:
    """Cut the connection under the stream: the client resumes with Last-Event-ID."""
    async with (
        DroppingProxy(server.url) as proxy,
        Client(proxy.url, server.token) as via_proxy,
        Client(server.url, server.token) as direct,
    ):
        await direct.create_thing("acme:r-0", "sensor")
        seen: list[dict[str, Any]] = []
        async with aclosing(via_proxy.events(after=0)) as stream:
            seen += await take(stream, 1)
            for n in range(1, 4):
                await direct.create_thing(f"acme:r-{n}", "sensor")
            seen += await take(stream, 1)
            proxy.drop_all()
            for n in range(4, 7):
                await direct.create_thing(f"acme:r-{n}", "sensor")
            seen += await take(stream, 5)
        assert proxy.connections >= 2
        assert [e["seq"] for e in seen] == list(range(1, 8))
        assert seen == (await direct.journal()).items


class DroppingProxy:
    """A TCP relay to the server whose open connections the test can cut at will."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.connections = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> DroppingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.drop_all()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def drop_all(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.wait(pumps)
        self._tasks.difference_update(pumps)
        for w in (writer, up_writer):
            w.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()
