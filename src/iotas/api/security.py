"""The bearer-token dependency every router but /healthz carries."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPBearer

from iotas.api.runtime import Runtime, runtime
from iotas.domain.errors import InvalidInput
from iotas.services.context import Context

# Declared for the OpenAPI document (securitySchemes); checking is ours, for our error format.
bearer_scheme = HTTPBearer(auto_error=False, description="An iotas API token")
MAX_CAUSE = 500


async def context(
    request: Request,
    rt: Annotated[Runtime, Depends(runtime)],
    _scheme: Annotated[object, Depends(bearer_scheme)],
    x_iotas_cause: Annotated[
        str | None,
        Header(description="Why this change is made; recorded as the journal event's cause"),
    ] = None,
) -> Context:
    actor = await rt.auth.authenticate(request.headers.get("authorization"))
    if x_iotas_cause is not None and len(x_iotas_cause) > MAX_CAUSE:
        raise InvalidInput(f"X-Iotas-Cause is longer than {MAX_CAUSE} characters")
    return Context(actor, x_iotas_cause or f"{request.method} {request.url.path}")


Ctx = Annotated[Context, Depends(context)]
Rt = Annotated[Runtime, Depends(runtime)]
