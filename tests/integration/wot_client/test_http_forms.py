"""The WoT client against a hostile HTTP Thing on 127.0.0.1: every fault ends within the
deadline with an error a person can act on, and a fault never stalls other exchanges."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

import pytest

from integration.wot_client.things_support import (
    PASSWORD,
    TIMEOUT,
    TOKEN,
    USER,
    HostileThing,
    closing,
    form,
    interactions,
)
from iotas.adapters.wot.client import ThingSecrets, WotClient
from iotas.adapters.wot.errors import (
    BadThingResponse,
    NoUsableForm,
    ThingRefused,
    ThingUnreachable,
)
from iotas.domain import td_model as ops
from iotas.domain.td_model import SecurityScheme
from support import free_port

R, W, OBS = ops.READ_PROPERTY, ops.WRITE_PROPERTY, ops.OBSERVE_PROPERTY


def prop(thing: HostileThing, path: str, *op: str, **kw: Any) -> Any:
    return interactions(properties={"p": (form(thing.url(path), *(op or (R,)), **kw),)})


T = TypeVar("T")


async def timed(coro: Awaitable[T]) -> tuple[float, T | Exception]:
    started = time.monotonic()
    result: T | Exception
    try:
        result = await coro
    except Exception as exc:
        result = exc
    return time.monotonic() - started, result


async def test_reads_writes_and_invokes(client: WotClient, hostile: HostileThing) -> None:
    things = interactions(
        properties={"p": (form(hostile.url("/property"), R, W),)},
        actions={"a": (form(hostile.url("/action"), ops.INVOKE_ACTION),)},
    )
    assert await client.read_property(things, "p") == 1
    await client.write_property(things, "p", 7)
    assert hostile.received[-1].method == "PUT" and hostile.received[-1].body == b"7"
    assert await client.read_property(things, "p") == 7
    # No input still sends a JSON `null` body: wotpy answers 500 to an empty one.
    assert await client.invoke_action(things, "a") == {"got": None}
    assert hostile.received[-1].headers["content-type"] == "application/json"
    assert await client.invoke_action(things, "a", {"speed": 2}) == {"got": {"speed": 2}}


async def test_fetch_td_wants_a_json_object(client: WotClient, hostile: HostileThing) -> None:
    assert await client.fetch_td(hostile.url("/json")) == {"v": 1}
    hostile.value = [1, 2]
    with pytest.raises(BadThingResponse, match="JSON object"):
        await client.fetch_td(hostile.url("/property"))
    with pytest.raises(NoUsableForm, match="http, https or coap"):
        await client.fetch_td("file:///etc/passwd")


async def test_slow_drip_is_cut_at_the_deadline(client: WotClient, hostile: HostileThing) -> None:
    # A byte every 0.2 s never trips httpx's per-read timeout; the total deadline does.
    spent, error = await timed(client.read_property(prop(hostile, "/drip"), "p"))
    assert isinstance(error, ThingUnreachable), error
    assert f"did not answer within {TIMEOUT:g} s" in str(error)
    assert TIMEOUT - 0.1 < spent < TIMEOUT + 1


async def test_a_put_that_never_answers(client: WotClient, hostile: HostileThing) -> None:
    things = interactions(properties={"p": (form(hostile.url("/readonly"), R, W),)})
    spent, error = await timed(client.write_property(things, "p", 3))
    assert isinstance(error, ThingUnreachable)
    assert "PUT" in str(error) and "did not answer within 1 s" in str(error)
    assert spent < TIMEOUT + 1


async def test_a_hung_request_stalls_nothing_else(client: WotClient, hostile: HostileThing) -> None:
    hung = asyncio.create_task(timed(client.read_property(prop(hostile, "/hang"), "p")))
    await asyncio.sleep(0.05)
    _, value = await timed(client.read_property(prop(hostile, "/property"), "p"))
    assert value == 1, value
    assert not hung.done()  # still waiting: the fast one did not wait for it
    spent, error = await hung
    assert isinstance(error, ThingUnreachable) and spent < TIMEOUT + 1


async def test_read_all_is_concurrent_and_keeps_each_outcome(
    client: WotClient, hostile: HostileThing
) -> None:
    things = interactions(
        properties={
            "ok": (form(hostile.url("/property"), R),),
            "hang1": (form(hostile.url("/hang"), R),),
            "hang2": (form(hostile.url("/drip"), R),),
            "bad": (form(hostile.url("/error"), R),),
        }
    )
    spent, out = await timed(client.read_all(things, ["ok", "hang1", "hang2", "bad"]))
    assert isinstance(out, dict), out
    assert spent < TIMEOUT + 1  # in parallel: not three deadlines end to end
    assert out["ok"] == 1
    assert isinstance(out["hang1"], ThingUnreachable)
    assert isinstance(out["hang2"], ThingUnreachable)
    assert isinstance(out["bad"], ThingRefused)


async def test_an_error_status_keeps_status_and_an_excerpt(
    client: WotClient, hostile: HostileThing
) -> None:
    with pytest.raises(ThingRefused) as caught:
        await client.read_property(prop(hostile, "/error"), "p")
    assert caught.value.status == 500
    assert caught.value.excerpt.startswith("boom: the lamp is on fire")
    assert len(caught.value.excerpt) <= 200
    assert "answered 500: boom" in str(caught.value)


@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
async def test_a_huge_body_is_refused(client: WotClient, hostile: HostileThing, path: str) -> None:
    spent, error = await timed(client.read_property(prop(hostile, path), "p"))
    assert isinstance(error, BadThingResponse), error
    assert "4096 bytes" in str(error)
    assert spent < TIMEOUT + 1


async def test_non_json_where_json_was_promised(client: WotClient, hostile: HostileThing) -> None:
    with pytest.raises(BadThingResponse, match="should answer JSON but sent text/html"):
        await client.read_property(prop(hostile, "/html"), "p")
    # A text form reads text; an empty answer is no value.
    text = prop(hostile, "/text", R, content_type="text/plain")
    assert await client.read_property(text, "p") == "warm white"
    assert await client.read_property(prop(hostile, "/empty"), "p") is None


async def test_redirects_stay_at_the_origin(client: WotClient, hostile: HostileThing) -> None:
    assert await client.read_property(prop(hostile, "/redirect-same"), "p") == {"v": 1}
    for path in ("/redirect-away", "/redirect-scheme"):
        count = len(hostile.received)
        with pytest.raises(BadThingResponse, match="another scheme, host or port: refused"):
            await client.read_property(prop(hostile, path), "p")
        assert len(hostile.received) == count + 1  # the other origin was never asked
    with pytest.raises(BadThingResponse, match="redirected more than 3 times"):
        await client.read_property(prop(hostile, "/redirect-loop"), "p")


async def test_unreachable_things(client: WotClient) -> None:
    closed = interactions(properties={"p": (form(f"http://127.0.0.1:{free_port()}/p", R),)})
    spent, error = await timed(client.read_property(closed, "p"))
    assert isinstance(error, ThingUnreachable) and spent < TIMEOUT + 1
    unknown = interactions(properties={"p": (form("http://no-such-thing.invalid/p", R),)})
    spent, error = await timed(client.read_property(unknown, "p"))
    assert isinstance(error, ThingUnreachable) and spent < TIMEOUT + 1


BASIC = SecurityScheme("basic_sc", "basic")
BEARER = SecurityScheme("bearer_sc", "bearer")
X_TOKEN = SecurityScheme("token_sc", "bearer", in_="header", key="X-Token")


async def test_basic_and_bearer(client: WotClient, hostile: HostileThing) -> None:
    def secured(path: str, scheme: SecurityScheme) -> Any:
        return interactions(
            properties={"p": (form(hostile.url(path), R),)},
            security=(scheme.name,),
            definitions=(scheme,),
        )

    secrets = ThingSecrets(username=USER, password=PASSWORD, token=TOKEN)
    assert await client.read_property(secured("/basic", BASIC), "p", secrets) is True
    assert await client.read_property(secured("/bearer", BEARER), "p", secrets) is True
    assert await client.read_property(secured("/x-token", X_TOKEN), "p", secrets) is True
    wrong = ThingSecrets(username=USER, password="nope", token="nope")
    with pytest.raises(ThingRefused) as caught:
        await client.read_property(secured("/basic", BASIC), "p", wrong)
    assert caught.value.status == 401
    count = len(hostile.received)
    with pytest.raises(NoUsableForm, match="give the Thing's credentials"):
        await client.read_property(secured("/basic", BASIC), "p")
    digest = SecurityScheme("digest_sc", "digest")
    with pytest.raises(NoUsableForm, match="'digest', which iotas does not speak"):
        await client.read_property(secured("/basic", digest), "p", secrets)
    assert len(hostile.received) == count  # refused before anything was sent


async def test_longpoll_observation(client: WotClient, hostile: HostileThing) -> None:
    things = prop(hostile, "/longpoll", OBS, subprotocol="longpoll")
    seen: list[Any] = []

    async def follow() -> None:
        async for value in client.observe_property(things, "p"):
            seen.append(value)

    task = asyncio.create_task(follow())
    await asyncio.sleep(1.3)  # past the Thing's own 1 s hold: an empty answer, asked again
    hostile.set(5)
    async with asyncio.timeout(3):
        while seen != [5]:
            await asyncio.sleep(0.02)
    hostile.set(6)
    async with asyncio.timeout(3):
        while seen != [5, 6]:
            await asyncio.sleep(0.02)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        async with asyncio.timeout(3):  # ends cleanly: a hang fails here
            await task
    async with asyncio.timeout(3):  # and lets its connection go
        while hostile.open_connections:
            await asyncio.sleep(0.02)


async def test_sse_events(client: WotClient, hostile: HostileThing) -> None:
    things = interactions(
        events={"overheat": (form(hostile.url("/sse"), ops.SUBSCRIBE_EVENT, subprotocol="sse"),)}
    )
    stream = client.subscribe_event(things, "overheat")
    await hostile.sse_events.put(b'event: overheat\ndata: {"t": 91}\n\n')
    await hostile.sse_events.put(b"data: line one\r\ndata: line two\r\n\r\n")
    async with closing(stream), asyncio.timeout(3):
        assert await anext(stream) == {"t": 91}
        assert await anext(stream) == "line one\nline two"


async def test_sse_line_without_end_is_refused(client: WotClient, hostile: HostileThing) -> None:
    things = interactions(
        events={
            "e": (form(hostile.url("/sse-endless-line"), ops.SUBSCRIBE_EVENT, subprotocol="sse"),)
        }
    )
    spent, error = await timed(anext(client.subscribe_event(things, "e")))
    assert isinstance(error, BadThingResponse) and "over 4096 bytes" in str(error)
    assert spent < TIMEOUT + 1


async def test_a_stream_gives_up_after_bounded_retries(hostile: HostileThing) -> None:
    wot = WotClient(timeout=TIMEOUT, stream_retries=2)
    try:
        gone = interactions(properties={"p": (form(f"http://127.0.0.1:{free_port()}/p", OBS),)})
        spent, error = await timed(anext(wot.observe_property(gone, "p")))
        assert isinstance(error, ThingUnreachable)
        # Three attempts, two backoffs (at most 0.5 s and 1 s).
        assert spent < 3 * TIMEOUT + 1.5 + 1
        # A refusal is not retried: asking again would get the same answer.
        spent, error = await timed(anext(wot.observe_property(prop(hostile, "/error", OBS), "p")))
        assert isinstance(error, ThingRefused) and spent < TIMEOUT + 0.5
    finally:
        await wot.aclose()
