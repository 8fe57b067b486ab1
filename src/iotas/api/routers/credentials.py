"""Device credentials of a Thing (create, list, revoke), and the export of active password
hashes that configures an external MQTT broker (`iotas broker-config`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from iotas.api.bodies import json_body
from iotas.api.responses import json_response
from iotas.api.security import Ctx, Rt
from iotas.domain import clock
from iotas.domain.errors import Forbidden, NotFound
from iotas.services.credentials import authorize

# Every route here takes `ctx: Ctx`, which authenticates (see routers/things.py).
router = APIRouter(prefix="/api/v1", tags=["credentials"])

# A response holding a secret or hashes must not be kept by any cache on the way.
NO_STORE = {"Cache-Control": "no-store"}

_CREDENTIAL_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["type"],
                "properties": {
                    "type": {"type": "string", "enum": ["password", "x509"]},
                    "csr": {"type": "string", "description": "PEM CSR (x509 only)"},
                },
            }
        }
    },
    "required": True,
}


@router.post(
    "/things/{thing_id}/credentials",
    status_code=201,
    openapi_extra={"requestBody": _CREDENTIAL_BODY},
    summary="Create a credential; the response is the only place its secret ever appears",
)
async def create_credential(thing_id: str, request: Request, ctx: Ctx, rt: Rt) -> Response:
    created = await rt.credentials.create(ctx, thing_id, await json_body(request))
    return json_response(created, 201, headers=NO_STORE)


@router.post(
    "/things/{thing_id}/credentials/renew",
    status_code=201,
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["serial"],
                        "properties": {
                            "serial": {"type": "string", "description": "The current cert's"},
                            "csr": {"type": "string", "description": "PEM CSR"},
                        },
                    }
                }
            },
            "required": True,
        }
    },
    summary="Renew a certificate: the Thing itself (client certificate) or an admin",
)
async def renew_certificate(thing_id: str, request: Request, ctx: Ctx, rt: Rt) -> Response:
    """A new certificate in place of the one named by `serial`, which keeps working for the
    grace period (`IOTAS_CERTIFICATE_GRACE`); the new certificate (and key) is shown once."""
    renewed = await rt.credentials.renew(ctx, thing_id, await json_body(request))
    return json_response(renewed, 201, headers=NO_STORE)


@router.get("/things/{thing_id}/credentials")
async def list_credentials(thing_id: str, ctx: Ctx, rt: Rt) -> Response:
    authorize(ctx.actor, thing_id, write=False)
    # A Thing has a handful of credentials: one page, always.
    return json_response({"items": await rt.credentials.list(thing_id), "next": None})


@router.delete("/things/{thing_id}/credentials/{credential_id}", status_code=204)
async def revoke_credential(thing_id: str, credential_id: str, ctx: Ctx, rt: Rt) -> Response:
    await rt.credentials.revoke(ctx, thing_id, credential_id)
    return Response(status_code=204)


@router.get(
    "/broker/credentials",
    summary="Active password hashes of every Thing, to configure an external broker (admin)",
)
async def broker_credentials(ctx: Ctx, rt: Rt) -> Response:
    """`{"generated_at", "credentials": [{"thing_id", "secret_hash"}]}`, by Thing id, each
    Thing's newest password last. One consistent read rather than pages: a broker
    configuration assembled across concurrent changes could revive a revoked secret."""
    if ctx.actor.role != "admin":
        raise Forbidden("only an admin token can export credential hashes")
    hashes = await rt.credentials.active_hashes()
    body = {
        "generated_at": clock.to_rfc3339(clock.now_us()),
        "credentials": [{"thing_id": t, "secret_hash": h} for t, h in hashes],
    }
    return json_response(body, headers=NO_STORE)


@router.get(
    "/ca",
    summary="The certificate of iotas' CA (PEM), for devices and brokers to trust",
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
async def ca_certificate(ctx: Ctx, rt: Rt) -> Response:
    if rt.credentials.ca is None:
        raise NotFound("this iotas has no certificate authority")
    return Response(rt.credentials.ca.certificate_pem, media_type="application/x-pem-file")
