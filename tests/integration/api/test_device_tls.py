"""Devices over HTTPS with their client certificates: what a Thing may do itself, renewal with
a grace period, and refusal of revoked, replaced or foreign certificates."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from iotas.services.ca import CertificateAuthority
from support import cert_files, https_server, tls_client

TOKEN = "iotas_test_device_tls_0123456789abcdef"
GRACE_S = 2


@pytest.fixture
async def https(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """iotas over HTTPS; yields its URL and the CA certificate file."""
    async with https_server(
        database_url, tmp_path / "data", TOKEN, certificate_grace_seconds=GRACE_S
    ) as served:
        yield served


async def test_a_device_uses_its_certificate_and_renews_it(
    https: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = https
    async with tls_client(url, ca, None) as admin:
        admin.headers["authorization"] = f"Bearer {TOKEN}"
        for thing in ("acme:dev-1", "acme:dev-2"):
            await admin.post("/api/v1/things", json={"id": thing, "kind": "sensor"})
        made = (
            await admin.post("/api/v1/things/acme:dev-1/credentials", json={"type": "x509"})
        ).json()
        first = cert_files(tmp_path, "first", made["certificate"], made["private_key"])

        async with tls_client(url, ca, first) as device:
            reported = await device.patch(
                "/api/v1/things/acme:dev-1/twin/reported", json={"fw": "1.0"}
            )
            assert reported.status_code == 200, reported.text
            telemetry = await device.post("/api/v1/things/acme:dev-1/telemetry", json={"t": 1})
            assert telemetry.status_code in (200, 202, 204), telemetry.text
            assert (await device.get("/api/v1/things/acme:dev-1/twin")).status_code == 200
            # Only its own Thing, only the device routes.
            other = await device.patch("/api/v1/things/acme:dev-2/twin/reported", json={"x": 1})
            assert other.status_code == 403
            assert (await device.get("/api/v1/things")).status_code == 403
            assert (await device.get("/api/v1/things/acme:dev-1")).status_code == 403
            desired = await device.patch("/api/v1/things/acme:dev-1/twin/desired", json={"x": 1})
            assert desired.status_code == 403

            # Renewal from its own CSR (the key never leaves the device).
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "whatever")]))
                .sign(key, hashes.SHA256())
            )
            renewed = await device.post(
                "/api/v1/things/acme:dev-1/credentials/renew",
                json={
                    "serial": made["serial"],
                    "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                },
            )
            assert renewed.status_code == 201, renewed.text
            body = renewed.json()
            assert "private_key" not in body and body["replaces"]["id"] == made["id"]
            assert body["replaces"]["expires_at"] is not None
            key_pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode()
            second = cert_files(tmp_path, "second", body["certificate"], key_pem)
            # The old certificate still works during the grace period...
            still = await device.patch(
                "/api/v1/things/acme:dev-1/twin/reported", json={"fw": "1.1"}
            )
            assert still.status_code == 200
            # ... but cannot be renewed again (its key would otherwise mint certificates on).
            twice = await device.post(
                "/api/v1/things/acme:dev-1/credentials/renew", json={"serial": made["serial"]}
            )
            assert twice.status_code == 404, twice.text
        await asyncio.sleep(GRACE_S + 0.5)
        async with tls_client(url, ca, first) as old:
            gone = await old.patch("/api/v1/things/acme:dev-1/twin/reported", json={"fw": "x"})
            assert gone.status_code == 401
        async with tls_client(url, ca, second) as new:
            ok = await new.patch("/api/v1/things/acme:dev-1/twin/reported", json={"fw": "2.0"})
            assert ok.status_code == 200
            again = await new.post(
                "/api/v1/things/acme:dev-1/credentials/renew", json={"serial": made["serial"]}
            )
            assert again.status_code == 404  # the replaced certificate cannot be renewed again

        history = (await admin.get("/api/v1/things/acme:dev-1/history")).json()["items"]
        assert {e["actor"] for e in history if e["type"] == "reported_changed"} == {"acme:dev-1"}
        added = [e for e in history if e["type"] == "credential_added"]
        assert added[-1]["patch"]["replaces"] == made["id"]

        # Revoked: refused at once.
        listed = (await admin.get("/api/v1/things/acme:dev-1/credentials")).json()["items"]
        for item in listed:
            await admin.delete(f"/api/v1/things/acme:dev-1/credentials/{item['id']}")
        async with tls_client(url, ca, second) as revoked:
            refused = await revoked.patch(
                "/api/v1/things/acme:dev-1/twin/reported", json={"fw": "3"}
            )
            assert refused.status_code == 401
            assert refused.headers["content-type"] == "application/problem+json"


async def test_foreign_certificates_and_no_credentials_are_refused(
    https: tuple[str, Path], tmp_path: Path
) -> None:
    url, ca = https
    async with tls_client(url, ca, None) as anonymous:
        assert (await anonymous.get("/api/v1/things/acme:dev-1/twin")).status_code == 401
    # A certificate from another CA naming the same Thing: the TLS layer refuses it.
    other = CertificateAuthority.open(tmp_path / "elsewhere")
    issued = other.issue_with_new_key("acme:dev-1", days=1)
    assert issued.private_key_pem is not None
    forged = cert_files(tmp_path, "forged", issued.certificate_pem, issued.private_key_pem)
    with pytest.raises(httpx.HTTPError):
        async with tls_client(url, ca, forged) as device:
            await device.get("/api/v1/things/acme:dev-1/twin")
