"""Zero-touch provisioning for a device: with only a claim token and its serial number, it
becomes a Thing with a certificate from iotas' CA.

    done = await provision("https://iotas.example", claim_token, "SN-000123")
    # done.thing_id, done.certificate, done.private_key, done.ca_certificate, done.endpoints

Without a CSR the key pair is made here, on the device, and only a CSR travels: the private
key never leaves the process (the server never sees it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotas import __version__
from iotas.sdk._http import connection_failed, error_of, json_body

PATH = "/api/v1/provision"


@dataclass(frozen=True, slots=True)
class Provisioned:
    """What provisioning gave the device. `private_key` is the PEM key made for it (None when
    it sent its own CSR); `created` is False when the claim re-provisioned its Thing."""

    thing_id: str
    certificate: str
    ca_certificate: str
    private_key: str | None
    created: bool
    credential_id: str
    endpoints: dict[str, str | None] = field(default_factory=dict)


def new_key_and_csr(common_name: str) -> tuple[str, str]:
    """A P-256 key (PEM, PKCS#8) and a CSR for it. The CSR's subject does not matter: iotas
    sets the certificate's subject to the Thing id."""
    key = ec.generate_private_key(ec.SECP256R1())
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return key_pem, request.public_bytes(serialization.Encoding.PEM).decode()


async def provision(
    url: str,
    claim_token: str,
    serial: str,
    csr: str | None = None,
    *,
    request_timeout: float = 30.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Provisioned:
    """Provision this device over HTTP(S) by claim. Raises `ApiError` with the server's
    reason when the claim is refused (401 unknown, 403 expired or revoked, 409 used up or
    the serial taken) and `ConnectionFailed` when the server cannot be reached."""
    key_pem = None
    if csr is None:
        key_pem, csr = new_key_and_csr(serial)
    base = url.rstrip("/")
    headers = {
        "Authorization": f"Bearer {claim_token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": f"iotas-sdk/{__version__}",
    }
    content = orjson.dumps({"serial": serial, "csr": csr})
    async with httpx.AsyncClient(
        base_url=base, timeout=request_timeout, transport=transport
    ) as http:
        try:
            response = await http.post(PATH, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise connection_failed(base, exc) from exc
    if response.is_error:
        raise error_of(response)
    body: dict[str, Any] = json_body(response)
    return Provisioned(
        thing_id=str(body["thing_id"]),
        certificate=str(body["certificate"]),
        ca_certificate=str(body["ca_certificate"]),
        private_key=key_pem,
        created=bool(body.get("created")),
        credential_id=str(body.get("credential", {}).get("id", "")),
        endpoints=dict(body.get("endpoints") or {}),
    )
