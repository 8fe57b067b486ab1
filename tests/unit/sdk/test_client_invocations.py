"""`Client.invoke` and the invocation calls, against an httpx mock of the API: the request
each sends, and `wait` following a queued invocation to its end."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from iotas.sdk import ApiError, Client


class FakeApi:
    def __init__(self, *, ends_after: int = 1) -> None:
        self.requests: list[httpx.Request] = []
        self.polls = 0
        self.ends_after = ends_after

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if request.method == "POST" and path == "/api/v1/things/acme:pump-1/actions/blink":
            body = json.loads(request.content)
            return httpx.Response(202, json=self._invocation("queued", input=body["input"]))
        if request.method == "GET" and path == "/api/v1/invocations/inv-1":
            self.polls += 1
            status = "succeeded" if self.polls >= self.ends_after else "running"
            return httpx.Response(200, json=self._invocation(status, output={"ok": True}))
        if request.method == "GET" and path == "/api/v1/invocations":
            return httpx.Response(200, json={"items": [self._invocation("queued")], "next": "x"})
        if request.method == "POST" and path == "/api/v1/invocations/inv-1/cancel":
            return httpx.Response(409, json={"title": "Conflict", "detail": "it has ended"})
        return httpx.Response(404, json={"title": "Not Found"})

    @staticmethod
    def _invocation(status: str, **extra: Any) -> dict[str, Any]:
        return {"id": "inv-1", "thing": "acme:pump-1", "action": "blink", "status": status} | extra


def client(api: FakeApi) -> Client:
    return Client("http://iotas.test", "t", transport=httpx.MockTransport(api.handle))


async def test_invoke_sends_input_ttl_and_key_and_answers_the_queued_invocation() -> None:
    api = FakeApi()
    async with client(api) as iotas:
        made = await iotas.invoke("acme:pump-1", "blink", {"times": 3}, ttl=60, idempotency_key="k")
    assert made["status"] == "queued"
    sent = json.loads(api.requests[0].content)
    assert sent == {"input": {"times": 3}, "ttl": 60, "idempotency_key": "k"}
    assert api.polls == 0


async def test_wait_follows_it_to_its_end() -> None:
    api = FakeApi(ends_after=1)
    async with client(api) as iotas:
        done = await iotas.invoke("acme:pump-1", "blink", {"times": 3}, wait=30)
    assert done["status"] == "succeeded" and done["output"] == {"ok": True}
    assert api.requests[-1].url.params["wait"] == "30"


async def test_a_wait_past_the_api_limit_is_cut_to_it() -> None:
    api = FakeApi()
    async with client(api) as iotas:
        await iotas.invocation("inv-1", wait=600)
    assert api.requests[-1].url.params["wait"] == "60"


async def test_list_and_cancel() -> None:
    api = FakeApi()
    async with client(api) as iotas:
        page = await iotas.invocations(thing="acme:pump-1", status=["queued", "delivered"])
        assert page.next == "x" and page.items[0]["id"] == "inv-1"
        with pytest.raises(ApiError) as refused:
            await iotas.cancel_invocation("inv-1")
    assert refused.value.status == 409
    assert api.requests[0].url.params["status"] == "queued,delivered"
    assert api.requests[0].url.params["thing"] == "acme:pump-1"
