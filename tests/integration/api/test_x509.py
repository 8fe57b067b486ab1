"""X.509 device credentials from iotas' CA: a CSR signed, or a key pair made and returned once;
subject and SAN carry the Thing id; the CA certificate at /api/v1/ca; on both backends."""

from __future__ import annotations

import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support import LiveServer


def csr_for(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cn: str = "whatever") -> str:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM).decode()


def check_issued(pem: str, ca_pem: str, thing_id: str) -> x509.Certificate:
    cert = x509.load_pem_x509_certificate(pem.encode())
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    cert.verify_directly_issued_by(ca)  # raises if the signature or issuer is wrong
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == thing_id
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == [thing_id]
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    return cert


async def test_csr_signed_and_key_pair_made(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:cam-1", "kind": "camera"})
    ca = await c.get("/api/v1/ca")
    assert ca.status_code == 200 and ca.text.startswith("-----BEGIN CERTIFICATE-----")
    ca_cert = x509.load_pem_x509_certificate(ca.text.encode())
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    # The device keeps its key: only the CSR travels. The CSR's own subject is not taken.
    device_key = ec.generate_private_key(ec.SECP256R1())
    signed = await c.post(
        "/api/v1/things/acme:cam-1/credentials",
        json={"type": "x509", "csr": csr_for(device_key, cn="acme:someone-else")},
    )
    assert signed.status_code == 201, signed.text
    body = signed.json()
    assert body["type"] == "x509" and "private_key" not in body and "secret" not in body
    assert body["ca_certificate"] == ca.text
    cert = check_issued(body["certificate"], ca.text, "acme:cam-1")
    assert cert.public_key() == device_key.public_key()
    assert signed.headers["cache-control"] == "no-store"

    made = (await c.post("/api/v1/things/acme:cam-1/credentials", json={"type": "x509"})).json()
    key = serialization.load_pem_private_key(made["private_key"].encode(), password=None)
    cert = check_issued(made["certificate"], ca.text, "acme:cam-1")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == key.public_key()

    # Listed (never with a key or certificate), journaled, revocable.
    listed = (await c.get("/api/v1/things/acme:cam-1/credentials")).json()["items"]
    assert [i["type"] for i in listed] == ["x509", "x509"]
    fields = {"id", "thing_id", "type", "created_at", "revoked_at", "serial", "expires_at"}
    assert all(set(i) == fields for i in listed)
    assert listed[1]["serial"] == made["serial"]
    assert listed[1]["expires_at"][:16] == made["not_after"][:16]
    revoked = await c.delete(f"/api/v1/things/acme:cam-1/credentials/{listed[0]['id']}")
    assert revoked.status_code == 204
    history = (await c.get("/api/v1/things/acme:cam-1/history")).json()["items"]
    added = [e["patch"] for e in history if e["type"] == "credential_added"]
    assert [p["type"] for p in added] == ["x509", "x509"]
    assert "BEGIN" not in str(history)

    # The CA key is in the data directory, readable by its owner only.
    key_file = server.settings.data_dir / "ca" / "ca.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


async def test_bad_csrs_are_refused(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:cam-2", "kind": "camera"})
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    good = csr_for(ec.generate_private_key(ec.SECP256R1()))
    tampered = good.replace(good.splitlines()[3], good.splitlines()[3][:-4] + "AAAA")
    for csr in ("", "not a csr", 42, csr_for(weak), tampered, "x" * 20000):
        response = await c.post(
            "/api/v1/things/acme:cam-2/credentials", json={"type": "x509", "csr": csr}
        )
        assert response.status_code == 400, (csr, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    extra = await c.post(
        "/api/v1/things/acme:cam-2/credentials", json={"type": "password", "csr": good}
    )
    assert extra.status_code == 400
    assert (await c.get("/api/v1/things/acme:cam-2/credentials")).json()["items"] == []
