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

from iotas.api.tls import client_certificate
from iotas.domain.errors import Forbidden, InvalidInput
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context

MAX_CAUSE = 500
CAUSE_HEADER = "x-iotas-cause"


# What an operator may change, besides reading everything: desired state and actions. A
# viewer only reads; an admin does everything. (route template, method)
OPERATOR_WRITES = frozenset(
    {
        ("/api/v1/things/{thing_id}/twin/desired", "PATCH"),
        ("/api/v1/twins/desired", "PATCH"),
        ("/api/v1/things/{thing_id}/properties/{name}", "PUT"),
        ("/api/v1/things/{thing_id}/actions/{name}", "POST"),
    }
)
# Reads that disclose what only an admin may see.
ADMIN_READS = frozenset(
    {
        "/api/v1/tokens",
        "/api/v1/broker/credentials",
        "/api/v1/ca/server-certificates",
        # Provisioning claims: their templates and uses are an admin's business.
        "/api/v1/claims",
        "/api/v1/claims/{claim_id}",
    }
)
READS = frozenset({"GET", "HEAD"})
# About the whole installation rather than any namespace: refused to a namespace-limited token
# (a journal head or verification, counters and tokens speak of every namespace at once; a
# claim may make Things in any namespace).
UNSCOPED_ONLY = frozenset(
    {
        "/api/v1/claims",
        "/api/v1/claims/{claim_id}",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        "/api/v1/broker/credentials",
        "/api/v1/journal/head",
        "/api/v1/journal/verify",
        "/api/v1/stats",
        "/metrics",
    }
)


# What a Thing may do itself over HTTPS with its client certificate, on its own id only:
# report, send telemetry, read its twin, renew its certificate.
DEVICE_ROUTES = frozenset(
    {
        ("/api/v1/things/{thing_id}/twin", "GET"),
        ("/api/v1/things/{thing_id}/twin/reported", "PATCH"),
        ("/api/v1/things/{thing_id}/telemetry", "POST"),
        ("/api/v1/things/{thing_id}/credentials/renew", "POST"),
    }
)


async def context(request: Request) -> Context:
    rt: Runtime = request.app.state.runtime
    source = request.client.host if request.client else "-"
    authorization = request.headers.get("authorization")
    certificate = client_certificate(request.scope) if authorization is None else None
    if certificate is not None:
        actor = await rt.auth.authenticate_device(
            certificate, source, rt.credentials.verify_certificate
        )
    else:
        actor = await rt.auth.authenticate(authorization, source)
    _authorize(actor, request)
    return Context(actor, _cause(request) or f"{request.method} {request.scope['path']}")


def _authorize(actor: Actor, request: Request) -> None:
    """Roles and namespaces, checked once for every route: a route needs no code of its own
    to be safe. (Lists, streams and bodies that name Things filter or check in their
    services, which get the actor.)"""
    route = request.scope.get("route")
    template = getattr(route, "path", request.scope["path"])
    method = request.method
    if actor.role == "device":
        if (template, method) not in DEVICE_ROUTES:
            raise Forbidden(f"a device may not {method} {template}")
        if request.path_params.get("thing_id") != actor.subject:
            raise Forbidden(f"a device reaches only its own Thing, {actor.subject!r}")
        return
    if actor.namespaces is not None:
        if template in UNSCOPED_ONLY:
            raise Forbidden(f"a namespace-limited token may not {method} {template}")
        thing_id = request.path_params.get("thing_id")
        if isinstance(thing_id, str):
            actor.must_see(thing_id)
    if actor.role == "admin":
        return
    if method in READS and template not in ADMIN_READS:
        return
    if actor.role == "operator" and (template, method) in OPERATOR_WRITES:
        return
    raise Forbidden(
        f"a {actor.role} token may not {method} {template}"
        + (
            " (operators change desired state and invoke actions)"
            if actor.role == "operator"
            else ""
        )
    )


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
