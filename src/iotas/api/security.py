"""Authentication for every router but /healthz, and the request's journal context.

One async dependency that only takes the Request: FastAPI resolves each declared parameter
and sub-dependency on every request, and on the hot write routes that resolution cost more
than the database work. Headers are therefore read here and documented in the OpenAPI
document by `openapi.py`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request

from iotas.api.runtime import Runtime
from iotas.domain.errors import InvalidInput
from iotas.services.context import Context

MAX_CAUSE = 500
CAUSE_HEADER = "x-iotas-cause"


async def context(request: Request) -> Context:
    rt: Runtime = request.app.state.runtime
    actor = await rt.auth.authenticate(request.headers.get("authorization"))
    return Context(actor, _cause(request) or f"{request.method} {request.scope['path']}")


def _cause(request: Request) -> str | None:
    """X-Iotas-Cause is percent-encoded UTF-8 (HTTP header values are bytes, not text)."""
    raw = request.headers.get(CAUSE_HEADER)
    if raw is None:
        return None
    try:
        cause = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("X-Iotas-Cause must be percent-encoded UTF-8 text") from None
    if len(cause) > MAX_CAUSE:
        raise InvalidInput(f"X-Iotas-Cause is longer than {MAX_CAUSE} characters")
    if not cause.isprintable():
        raise InvalidInput("X-Iotas-Cause must be printable text (no control characters)")
    return cause


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


Ctx = Annotated[Context, Depends(context)]
Rt = Annotated[Runtime, Depends(runtime)]
