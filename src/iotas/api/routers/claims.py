"""Provisioning claims (admin: create, list, read, revoke), and `POST /api/v1/provision`,
where a device that holds only a claim token and its serial becomes a Thing with a
certificate.

`/api/v1/provision` is the one route not authenticated by an operator token: the
`claim` dependency below authenticates the claim token instead, under the same per-source
failure limit.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import ClaimBody, ProvisionBody
from iotas.api.public_url import public_host
from iotas.api.responses import json_response
from iotas.api.routers.tdd import endpoints as http_endpoints
from iotas.api.security import Permission, Requirement, Rt, declare, requires
from iotas.runtime import Runtime
from iotas.services.context import Context

router = APIRouter(prefix="/api/v1", tags=["provisioning"])

NO_STORE = {"Cache-Control": "no-store"}
# A claim may make Things in any namespace: admin only, never a namespace-limited token.
Admin = Annotated[Context, requires(Permission.ADMIN, installation=True)]
PROVISION_PATH = "/api/v1/provision"


@router.post(
    "/claims",
    status_code=201,
    summary="Create a provisioning claim (admin); the response is the only place its token is",
)
async def create_claim(ctx: Admin, rt: Rt, data: Annotated[Any, body(ClaimBody)]) -> Response:
    created = await rt.claims.create(ctx, data)
    return json_response(created, 201, headers=NO_STORE)


@router.get("/claims", summary="Provisioning claims (admin), never their tokens")
async def list_claims(ctx: Admin, rt: Rt) -> Response:
    return json_response({"items": await rt.claims.list(ctx.actor), "next": None})


@router.get("/claims/{claim_id}")
async def get_claim(claim_id: str, ctx: Admin, rt: Rt) -> Response:
    return json_response(await rt.claims.get(ctx.actor, claim_id))


@router.delete("/claims/{claim_id}", status_code=204)
async def revoke_claim(claim_id: str, ctx: Admin, rt: Rt) -> Response:
    await rt.claims.revoke(ctx, claim_id)
    return Response(status_code=204)


@declare(Requirement(Permission.CLAIM))
async def claim(request: Request) -> str:
    """The id of the claim whose token the device sent (instead of an operator token)."""
    rt: Runtime = request.app.state.runtime
    source = request.client.host if request.client else "-"
    return await rt.claims.authenticate(request.headers.get("authorization"), source)


Claim = Annotated[str, Depends(claim)]


@router.post(
    "/provision",
    status_code=201,
    openapi_extra={"security": [{"claim": []}]},
    summary="A device provisions itself with a claim token: its Thing id and certificate",
)
async def provision(
    request: Request, claim_id: Claim, rt: Rt, data: Annotated[Any, body(ProvisionBody)]
) -> Response:
    # The public host, never the request's Host header: the device sends its new credential
    # to the broker named here.
    where = rt.claims.endpoints(public_host(request), http_endpoints(request).http_base)
    provisioned = await rt.claims.provision(claim_id, data, via=request.url.scheme, endpoints=where)
    return json_response(provisioned, 201, headers=NO_STORE)
