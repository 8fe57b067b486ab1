"""`iotas broker-config mosquitto --tls-port`: devices log in to a real Mosquitto with their
iotas certificates, reach only their own topics, and a revoked certificate (in the CRL the
configuration is regenerated with) is refused.

A live iotas server holds the credentials; the CLI (a real subprocess, over HTTP) writes the
configuration; Mosquitto runs on free loopback ports; paho-mqtt plays the devices (over TLS)
and the iotas service user (with its password, on the plain listener).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import queue
import shutil
import socket
import ssl
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import IN_CI
from integration.mqtt.test_mosquitto_config import WAIT, Broker, Mqtt, _cli, attempt
from support import LiveServer, free_port

pytestmark = pytest.mark.mosquitto

A, B, C = "acme:tls-a", "acme:tls-b", "acme:tls-c"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    # The broker configuration does not depend on the database: SQLite alone keeps this short.
    return f"sqlite:///{tmp_path / 'iotas.db'}"


@pytest.fixture
def out_dir() -> Iterator[Path]:
    if shutil.which("mosquitto") is None:
        if IN_CI:
            pytest.fail("CI requires the mosquitto binary")
        pytest.skip("mosquitto is not installed")
    # Not under pytest's tmp_path: Mosquitto started as root reads its files after dropping
    # to its own user, which must be able to reach the directory.
    path = Path(tempfile.mkdtemp(prefix="iotas-mosquitto-tls-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class TlsMqtt(Mqtt):
    """`Mqtt` over TLS, with a client certificate (or none), trusting only iotas' CA."""

    def __init__(self, port: int, client_id: str, ca: Path, cert: tuple[Path, Path] | None):
        self.port = port
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.client.tls_set_context(context)
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.connack: queue.Queue[Any] = queue.Queue()
        self.subacks: dict[int, queue.Queue[list[Any]]] = {}
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda c, u, mid, codes, p: self._suback(mid).put(codes)

    def connect(self) -> bool:
        """True when accepted; False when the handshake or the CONNECT was refused."""
        try:
            self.client.connect("127.0.0.1", self.port, keepalive=30)
        except (ssl.SSLError, OSError):
            return False
        self.client.loop_start()
        try:
            code = self.connack.get(timeout=WAIT)
        except queue.Empty:  # the broker closed the connection instead of answering
            self.close()
            return False
        if code.is_failure:
            self.close()
            return False
        return True


def tls_attempt(port: int, client_id: str, ca: Path, cert: tuple[Path, Path] | None) -> bool:
    client = TlsMqtt(port, client_id, ca, cert)
    accepted = client.connect()
    if accepted:
        # A refused certificate may pass the client's side of the handshake (TLS 1.3 checks
        # it after the client finished); it must not pass a round trip.
        try:
            client.subscribe("things/x/never")
        except queue.Empty:
            accepted = False
        client.close()
    return accepted


def _save(folder: Path, name: str, created: dict[str, Any]) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    cert.write_text(created["certificate"])
    key.write_text(created["private_key"])
    key.chmod(0o600)
    return cert, key


async def _generate(server: LiveServer, out: Path, port: int, tls_port: int) -> dict[str, Any]:
    owner = ["--owner", "mosquitto"] if os.geteuid() == 0 else []
    return await _cli(
        server,
        "broker-config",
        "mosquitto",
        "--out",
        str(out),
        "--port",
        str(port),
        "--tls-port",
        str(tls_port),
        "--server-name",
        "mqtt.example",
        "--json",
        *owner,
    )


def _wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _check_isolation(
    port: int, tls_port: int, ca: Path, certs: dict[str, tuple[Path, Path]], service: str
) -> None:
    iotas = Mqtt(port, "iotas", service, "iotas-test")
    a = TlsMqtt(tls_port, A, ca, certs[A])
    b = TlsMqtt(tls_port, B, ca, certs[B])
    try:
        assert iotas.connect() and a.connect() and b.connect()
        assert iotas.subscribe("things/#")
        assert a.subscribe(f"things/{A}/#") and b.subscribe(f"things/{B}/#")
        assert not a.subscribe(f"things/{B}/#")
        assert not a.subscribe("things/#")
        assert not a.subscribe("things/+/telemetry")

        # A's telemetry reaches iotas; A receives what iotas sends it.
        a.publish(f"things/{A}/telemetry", b'{"temp": 21.5}')
        assert iotas.next_message() == (f"things/{A}/telemetry", b'{"temp": 21.5}')
        assert a.next_message() == (f"things/{A}/telemetry", b'{"temp": 21.5}')
        iotas.publish(f"things/{A}/desired", b"to-a")
        assert a.next_message() == (f"things/{A}/desired", b"to-a")
        assert iotas.next_message() == (f"things/{A}/desired", b"to-a")

        # A cannot publish on B's topics: what iotas sees next is A's marker, sent after.
        a.publish(f"things/{B}/telemetry", b"forged")
        a.publish(f"things/{B}/desired", b"forged")
        a.publish(f"things/{A}/marker", b"1")
        assert iotas.next_message() == (f"things/{A}/marker", b"1")
        assert a.next_message() == (f"things/{A}/marker", b"1")
        assert b.messages.empty()

        # B (its certificate from its own CSR) works the same, and A hears nothing of it.
        b.publish(f"things/{B}/telemetry", b"b-own")
        assert iotas.next_message() == (f"things/{B}/telemetry", b"b-own")
        assert b.next_message() == (f"things/{B}/telemetry", b"b-own")
        iotas.publish(f"things/{A}/marker", b"2")
        assert a.next_message() == (f"things/{A}/marker", b"2")
        assert iotas.next_message() == (f"things/{A}/marker", b"2")  # its own echo
        assert a.messages.empty()

        # A's certificate with B's client id does not become B: Mosquitto takes the client
        # id from the certificate, so B's session is untouched and B still publishes.
        borrowed = TlsMqtt(tls_port, B, ca, certs[A])
        assert borrowed.connect()
        assert not borrowed.subscribe(f"things/{B}/#")
        borrowed.close()
        b.publish(f"things/{B}/marker", b"still-b")
        assert iotas.next_message() == (f"things/{B}/marker", b"still-b")
        assert b.connack.empty()  # B was never thrown out (and reconnected)
    finally:
        for client in (iotas, a, b):
            client.close()


async def test_devices_log_in_with_certificates_and_stay_isolated(
    server: LiveServer, out_dir: Path, tmp_path: Path
) -> None:
    c = server.client
    for thing_id in (A, B, C):
        made_thing = await c.post("/api/v1/things", json={"id": thing_id, "kind": "pump"})
        assert made_thing.status_code == 201, made_thing.text
    made = (await c.post(f"/api/v1/things/{A}/credentials", json={"type": "x509"})).json()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ignored")]))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
        .decode()
    )
    signed = (
        await c.post(f"/api/v1/things/{B}/credentials", json={"type": "x509", "csr": csr})
    ).json()
    signed["private_key"] = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    password = (await c.post(f"/api/v1/things/{C}/credentials", json={"type": "password"})).json()
    certs = {A: _save(tmp_path, "a", made), B: _save(tmp_path, "b", signed)}

    port, tls_port = free_port(), free_port()
    report = await _generate(server, out_dir, port, tls_port)
    assert report["things"] == 3
    assert report["tls"]["certificate_things"] == 2
    assert report["tls"]["server_certificate_issued"] is True
    assert stat.S_IMODE((out_dir / "server.key").stat().st_mode) == 0o600
    conf = (out_dir / "mosquitto.conf").read_text()
    for line in (
        f"listener {tls_port} 127.0.0.1",
        "require_certificate true",
        "use_identity_as_username true",
        f"crlfile {out_dir.resolve() / 'crl.pem'}",
    ):
        assert line in conf
    server_cert = x509.load_pem_x509_certificate((out_dir / "server.crt").read_bytes())
    ca_cert = x509.load_pem_x509_certificate((out_dir / "ca.crt").read_bytes())
    assert server_cert.issuer == ca_cert.subject
    names = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mqtt.example" in names.get_values_for_type(x509.DNSName)
    service = (out_dir / "iotas.secret").read_text().strip()
    ca = out_dir / "ca.crt"

    broker = Broker(out_dir / "mosquitto.conf", port)
    try:
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(_wait_listening, tls_port)
        assert await asyncio.to_thread(tls_attempt, tls_port, A, ca, certs[A])
        assert await asyncio.to_thread(tls_attempt, tls_port, B, ca, certs[B])
        # No certificate, or one from another CA: refused.
        assert not await asyncio.to_thread(tls_attempt, tls_port, A, ca, None)
        foreign = _foreign_certificate(tmp_path, A)
        assert not await asyncio.to_thread(tls_attempt, tls_port, A, ca, foreign)
        # A password device still logs in on the plain listener; a certificate-only Thing
        # cannot log in there with a password at all.
        assert await asyncio.to_thread(attempt, port, C, password["secret"])
        assert not await asyncio.to_thread(attempt, port, A, password["secret"])
        assert not await asyncio.to_thread(attempt, port, A, "")
        await asyncio.to_thread(_check_isolation, port, tls_port, ca, certs, service)

        # Revoke A's certificate: it is in the CRL iotas serves...
        assert (await c.delete(f"/api/v1/things/{A}/credentials/{made['id']}")).status_code == 204
        crl = x509.load_pem_x509_crl((await c.get("/api/v1/ca/crl")).content)
        assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
        assert crl.get_revoked_certificate_by_serial_number(int(made["serial"], 16))
        assert crl.get_revoked_certificate_by_serial_number(int(signed["serial"], 16)) is None
        # ...and, regenerated and restarted, Mosquitto refuses it; B still gets in.
        report = await _generate(server, out_dir, port, tls_port)
        assert report["tls"]["certificate_things"] == 1
        assert report["tls"]["server_certificate_issued"] is False  # kept
        await asyncio.to_thread(broker.stop)
        broker.log.write_text("")  # the refusals above are logged as errors
        await asyncio.to_thread(broker.start)
        await asyncio.to_thread(_wait_listening, tls_port)
        assert not await asyncio.to_thread(tls_attempt, tls_port, A, ca, certs[A])
        assert await asyncio.to_thread(tls_attempt, tls_port, B, ca, certs[B])
        # Refused by the TLS layer (the CRL), not for want of a role: the certificate's
        # chain is as valid as before the revocation.
        assert "certificate verify failed" in broker.log.read_text()
    finally:
        await asyncio.to_thread(broker.stop)


def _foreign_certificate(folder: Path, thing_id: str) -> tuple[Path, Path]:
    """A certificate for the Thing id from a CA iotas never heard of."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_id)]))
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    created = {
        "certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "private_key": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }
    return _save(folder, "foreign", created)


async def test_crl_and_server_certificates_over_the_api(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": A, "kind": "pump"})
    kept = (await c.post(f"/api/v1/things/{A}/credentials", json={"type": "x509"})).json()
    gone = (await c.post(f"/api/v1/things/{A}/credentials", json={"type": "x509"})).json()
    assert (await c.delete(f"/api/v1/things/{A}/credentials/{gone['id']}")).status_code == 204
    ca_cert = x509.load_pem_x509_certificate((await c.get("/api/v1/ca")).content)

    response = await c.get("/api/v1/ca/crl")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/pkix-crl")
    crl = x509.load_pem_x509_crl(response.content)
    assert crl.issuer == ca_cert.subject
    assert crl.is_signature_valid(ca_cert.public_key())  # type: ignore[arg-type]
    assert [entry.serial_number for entry in crl] == [int(gone["serial"], 16)]
    assert crl.get_revoked_certificate_by_serial_number(int(kept["serial"], 16)) is None
    assert crl.next_update_utc is not None
    assert crl.next_update_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=29)
    exported = (await c.get("/api/v1/broker/credentials")).json()
    assert exported["certificates"] == [{"thing_id": A}]

    issued = await c.post("/api/v1/ca/server-certificates", json={"hosts": ["broker.example"]})
    assert issued.status_code == 201 and issued.headers["cache-control"] == "no-store"
    cert = x509.load_pem_x509_certificate(issued.json()["certificate"].encode())
    assert cert.issuer == ca_cert.subject
    assert serialization.load_pem_private_key(issued.json()["private_key"].encode(), None)
    body: object  # JSON bodies of every shape, right and wrong
    for body in ({}, {"hosts": []}, {"hosts": ["bad name"]}, {"hosts": ["x"], "csr": "y"}):
        refused = await c.post("/api/v1/ca/server-certificates", json=body)
        assert refused.status_code == 400, body
    async with server.anonymous() as anonymous:
        assert (await anonymous.get("/api/v1/ca/crl")).status_code == 401
        made = await c.post("/api/v1/tokens", json={"subject": "v", "role": "viewer"})
        viewer = {"Authorization": f"Bearer {made.json()['token']}"}
        assert (await anonymous.get("/api/v1/ca/crl", headers=viewer)).status_code == 200
        refused = await anonymous.post(
            "/api/v1/ca/server-certificates", json={"hosts": ["x"]}, headers=viewer
        )
        assert refused.status_code == 403
