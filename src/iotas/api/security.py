"""Authentication for every router but /healthz, and the request's journal context.

One async dependency that only takes the Request: FastAPI resolves each declared parameter
and sub-dependency on every request, and on the hot write routes that resolution cost more
than the database work. Headers are therefore read here and documented in the OpenAPI
document by `openapi.py`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from iotas.api.runtime import Runtime
from iotas.domain.errors import InvalidInput
from iotas.services.context import Context

MAX_CAUSE = 500
CAUSE_HEADER = "x-iotas-cause"


async def context(request: Request) -> Context:
    rt: Runtime = request.app.state.runtime
    actor = await rt.auth.authenticate(request.headers.get("authorization"))
    cause = request.headers.get(CAUSE_HEADER)
    if cause is not None and len(cause) > MAX_CAUSE:
        raise InvalidInput(f"X-Iotas-Cause is longer than {MAX_CAUSE} characters")
    return Context(actor, cause or f"{request.method} {request.scope['path']}")


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


Ctx = Annotated[Context, Depends(context)]
Rt = Annotated[Runtime, Depends(runtime)]
