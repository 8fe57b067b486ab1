"""The live event stream (Server-Sent Events) with resume.

Each SSE event carries a journal event; its `id:` is the journal sequence number. We remember
the last sequence number handed out and, when the connection drops, ends or goes idle,
reconnect with `Last-Event-ID` (and `after`) set to it. Events at or below it are skipped, so a
reader sees every event exactly once and in order even if the server replays some.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import httpx
import orjson
from httpx_sse import SSEError, aconnect_sse

from iotas.sdk._http import connection_failed, error_of
from iotas.sdk.errors import ApiError

MIN_DELAY = 0.1
MAX_DELAY = 5.0


async def stream_events(
    http: httpx.AsyncClient,
    path: str,
    params: dict[str, str],
    *,
    after: int | None,
    connect_timeout: float,
    idle_timeout: float,
    give_up_after: float | None,
) -> AsyncGenerator[dict[str, Any], None]:
    last = after
    connected = False
    failing_since: float | None = None
    base_delay = MIN_DELAY  # the server may set it with `retry:`
    attempt = 0  # reconnect attempts since the stream last worked
    timeout = httpx.Timeout(connect_timeout, read=idle_timeout)
    while True:
        query = dict(params)
        headers: dict[str, str] = {}
        if last is not None:
            query["after"] = str(last)
            headers["Last-Event-ID"] = str(last)
        try:
            async with aconnect_sse(
                http, "GET", path, params=query, headers=headers, timeout=timeout
            ) as source:
                response = source.response
                if response.is_error:
                    await response.aread()
                    # A server that is restarting may answer 5xx for a moment.
                    if not (connected and response.is_server_error):
                        raise error_of(response)
                else:
                    connected, failing_since, attempt = True, None, 0
                    async for sse in source.aiter_sse():
                        if sse.retry is not None:
                            base_delay = max(MIN_DELAY, sse.retry / 1000)
                        if not sse.data:
                            continue  # a keep-alive or control event
                        event = _decode(sse.data, response)
                        seq = _seq(event, sse.id)
                        if seq is not None:
                            if last is not None and seq <= last:
                                continue
                            last = seq
                        yield event
        except SSEError as exc:
            raise ApiError(
                0, {"title": "Not an event stream", "status": 0, "detail": str(exc)}
            ) from exc
        except httpx.TransportError as exc:
            if not connected:
                raise connection_failed(str(http.base_url), exc) from exc
            now = time.monotonic()
            failing_since = failing_since or now
            if give_up_after is not None and now - failing_since >= give_up_after:
                raise connection_failed(str(http.base_url), exc) from exc
        # The first retry after a working stream is immediate (most drops are momentary);
        # then wait the server's `retry`, doubling up to MAX_DELAY.
        if attempt:
            await asyncio.sleep(min(MAX_DELAY, base_delay * 2 ** (attempt - 1)))
        attempt += 1


def _decode(data: str, response: httpx.Response) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            response.status_code,
            {"title": "Invalid event", "status": response.status_code, "detail": str(exc)},
        ) from None
    return event if isinstance(event, dict) else {"value": event}


def _seq(event: dict[str, Any], sse_id: str) -> int | None:
    seq = event.get("seq")
    if isinstance(seq, int):
        return seq
    return int(sse_id) if sse_id.isdigit() else None
