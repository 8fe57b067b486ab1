"""Device credentials of a Thing (create, list, revoke), and the export of active password
hashes that configures an external MQTT broker (`iotas broker-config`)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from cryptography import x509
from fastapi import APIRouter
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import CredentialBody, RenewBody, ServerCertificateBody
from iotas.api.responses import json_response
from iotas.api.security import CanAdminister, CanRead, Permission, Rt, requires
from iotas.domain import clock
from iotas.domain.errors import InvalidInput, NotFound
from iotas.services.ca import issue_server
from iotas.services.context import Context

# Every route states its permission in its `ctx` parameter (security.py).
router = APIRouter(prefix="/api/v1", tags=["credentials"])

# A response holding a secret or hashes must not be kept by any cache on the way.
NO_STORE = {"Cache-Control": "no-store"}


@router.post(
    "/things/{thing_id}/credentials",
    status_code=201,
    summary="Create a credential; the response is the only place its secret ever appears",
)
async def create_credential(
    thing_id: str, ctx: CanAdminister, rt: Rt, data: Annotated[Any, body(CredentialBody)]
) -> Response:
    created = await rt.credentials.create(ctx, thing_id, data)
    return json_response(created, 201, headers=NO_STORE)


@router.post(
    "/things/{thing_id}/credentials/renew",
    status_code=201,
    summary="Renew a certificate: the Thing itself (client certificate) or an admin",
)
async def renew_certificate(
    thing_id: str,
    ctx: Annotated[Context, requires(Permission.ADMIN, device=True)],
    rt: Rt,
    data: Annotated[Any, body(RenewBody)],
) -> Response:
    """A new certificate in place of the one named by `serial`, which keeps working for the
    grace period (`IOTAS_CERTIFICATE_GRACE`); the new certificate (and key) is shown once."""
    renewed = await rt.credentials.renew(ctx, thing_id, data)
    return json_response(renewed, 201, headers=NO_STORE)


@router.get("/things/{thing_id}/credentials")
async def list_credentials(thing_id: str, ctx: CanRead, rt: Rt) -> Response:
    # A Thing has a handful of credentials: one page, always.
    return json_response({"items": await rt.credentials.list(thing_id), "next": None})


@router.delete("/things/{thing_id}/credentials/{credential_id}", status_code=204)
async def revoke_credential(
    thing_id: str, credential_id: str, ctx: CanAdminister, rt: Rt
) -> Response:
    await rt.credentials.revoke(ctx, thing_id, credential_id)
    return Response(status_code=204)


@router.get(
    "/broker/credentials",
    summary="Active password hashes of every Thing, to configure an external broker (admin)",
)
async def broker_credentials(
    ctx: Annotated[Context, requires(Permission.ADMIN, installation=True)], rt: Rt
) -> Response:
    """`{"generated_at", "credentials": [{"thing_id", "secret_hash"}], "certificates":
    [{"thing_id"}]}`, by Thing id, each
    Thing's newest password last. One consistent read rather than pages: a broker
    configuration assembled across concurrent changes could revive a revoked secret."""
    hashes = await rt.credentials.active_hashes()
    certified = await rt.credentials.certificate_things()
    body = {
        "generated_at": clock.to_rfc3339(clock.now_us()),
        "credentials": [{"thing_id": t, "secret_hash": h} for t, h in hashes],
        # Things that may log in with a certificate (checked by the broker against the CA
        # and the CRL): they need topics even without a password.
        "certificates": [{"thing_id": t} for t in certified],
    }
    return json_response(body, headers=NO_STORE)


@router.get(
    "/ca",
    summary="The certificate of iotas' CA (PEM), for devices and brokers to trust",
    responses={200: {"content": {"application/x-pem-file": {}}}},
)
async def ca_certificate(ctx: CanRead, rt: Rt) -> Response:
    if rt.credentials.ca is None:
        raise NotFound("this iotas has no certificate authority")
    return Response(rt.credentials.ca.certificate_pem, media_type="application/x-pem-file")


@router.get(
    "/ca/crl",
    summary="The CA's certificate revocation list (PEM), for brokers that check certificates",
    responses={200: {"content": {"application/pkix-crl": {}}}},
)
async def ca_crl(ctx: CanRead, rt: Rt) -> Response:
    """Every certificate iotas no longer accepts (revoked, past a renewal's grace period, or
    expired), signed by the CA; valid for 30 days (`nextUpdate`), so fetch it again sooner."""
    return Response(await rt.credentials.crl(), media_type="application/pkix-crl")


@router.post(
    "/ca/server-certificates",
    status_code=201,
    summary="A TLS server certificate from the CA, for an external broker (admin)",
)
async def server_certificate(
    ctx: Annotated[Context, requires(Permission.ADMIN, installation=True)],
    rt: Rt,
    data: Annotated[Any, body(ServerCertificateBody)],
) -> Response:
    """A server certificate (and its key, shown once and never kept) for the `hosts` of a
    broker that devices reach with their iotas certificates, so they trust the CA only."""
    ca = rt.credentials.ca
    if ca is None:
        raise NotFound("this iotas has no certificate authority")
    hosts = data["hosts"]
    if not 0 < len(hosts) <= MAX_SERVER_HOSTS or not all(_host_name(h) for h in hosts):
        raise InvalidInput(
            f'a server certificate needs {{"hosts": [...]}}: 1 to {MAX_SERVER_HOSTS} DNS '
            "names or IP addresses",
            field="hosts",
        )
    cert_pem, key_pem = await asyncio.to_thread(issue_server, ca, [str(h) for h in hosts])
    issued = x509.load_pem_x509_certificate(cert_pem.encode())
    created = {
        "certificate": cert_pem,
        "private_key": key_pem,
        "ca_certificate": ca.certificate_pem,
        "serial": format(issued.serial_number, "x"),
        "not_after": clock.to_rfc3339(int(issued.not_valid_after_utc.timestamp() * 1_000_000)),
    }
    return json_response(created, 201, headers=NO_STORE)


MAX_SERVER_HOSTS = 20
_HOST = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9.:*-]{0,63}$")


def _host_name(value: object) -> bool:
    return isinstance(value, str) and bool(_HOST.match(value))
