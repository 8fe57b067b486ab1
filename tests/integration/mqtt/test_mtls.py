"""Devices on the embedded broker's TLS listener: the client certificate from iotas' CA is the
identity, with the same topic isolation as passwords; revoked, foreign or borrowed
certificates are refused, and revocation cuts the live connection."""

from __future__ import annotations

import ssl
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from integration.mqtt.mqtt_support import Iotas, eventually
from iotas.services.ca import CertificateAuthority


class TlsDevice:
    """A paho client over TLS with a client certificate (or none)."""

    def __init__(
        self,
        address: tuple[str, int],
        client_id: str,
        ca: Path,
        cert: tuple[Path, Path] | None,
    ) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.granted: list[Any] = []
        self.connack: Any = None
        self.connected = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        context = ssl.create_default_context(cafile=str(ca))
        if cert is not None:
            context.load_cert_chain(str(cert[0]), str(cert[1]))
        self.client.tls_set_context(context)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, m: self.messages.append((m.topic, bytes(m.payload)))
        self.client.on_subscribe = lambda _c, _u, _m, codes, _p: self.granted.extend(codes)
        self.client.connect(*address, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _write(folder: Path, name: str, cert: str, key: str) -> tuple[Path, Path]:
    (folder / f"{name}.crt").write_text(cert)
    (folder / f"{name}.key").write_text(key)
    return folder / f"{name}.crt", folder / f"{name}.key"


def _refused(address: tuple[str, int], client_id: str, ca: Path, cert: Any) -> bool:
    """Whether the connection is refused: at the TLS handshake or by CONNACK."""
    try:
        device = TlsDevice(address, client_id, ca, cert)
    except (ssl.SSLError, OSError):
        return True
    try:
        if not device.connected.wait(5):
            return True  # the server closed the connection without CONNACK
        return bool(device.connack != 0)
    finally:
        device.close()


async def test_a_device_connects_with_its_certificate_and_stays_in_its_topics(
    embedded: Iotas, tmp_path: Path
) -> None:
    ca = tmp_path / "ca.crt"
    async with embedded.client() as api:
        ca.write_text((await api.get("/api/v1/ca")).text)
        for thing in ("acme:tls-1", "acme:tls-2"):
            await api.post("/api/v1/things", json={"id": thing, "kind": "sensor"})
        made = (
            await api.post("/api/v1/things/acme:tls-1/credentials", json={"type": "x509"})
        ).json()
        cert = _write(tmp_path, "tls-1", made["certificate"], made["private_key"])
        # Also from the device's own CSR (the key never leaves it).
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
            .sign(key, hashes.SHA256())
        )
        signed = (
            await api.post(
                "/api/v1/things/acme:tls-2/credentials",
                json={
                    "type": "x509",
                    "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                },
            )
        ).json()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        cert2 = _write(tmp_path, "tls-2", signed["certificate"], key_pem)

        device = TlsDevice(embedded.mqtts, "acme:tls-1", ca, cert)
        try:
            assert device.connected.wait(10) and device.connack == 0
            info = device.client.publish("things/acme:tls-1/telemetry", b'{"t": 21.5}', qos=1)
            info.wait_for_publish(5)
            latest = await api.get("/api/v1/things/acme:tls-1/telemetry/latest")
            assert latest.json()["t"]["value"] == 21.5
            assert (await api.get("/api/v1/things/acme:tls-1")).json()["connected"] is True
            before = await embedded.rejected(api)
            # Another Thing's topics: publish dropped (and counted), subscription refused.
            other = device.client.publish("things/acme:tls-2/telemetry", b'{"t": 99}', qos=1)
            other.wait_for_publish(5)
            device.client.subscribe("things/acme:tls-2/desired", qos=1)
            device.client.subscribe("things/#", qos=1)
            await eventually(lambda: len(device.granted) == 2)
            assert all(getattr(code, "is_failure", code == 128) for code in device.granted)
            after = await embedded.rejected(api)
            assert after.get("acl_denied", 0) >= before.get("acl_denied", 0) + 3
            other_latest = await api.get("/api/v1/things/acme:tls-2/telemetry/latest")
            assert other_latest.json() == {}

            # The same certificate as another client id, and no certificate: refused.
            assert _refused(embedded.mqtts, "acme:tls-2", ca, cert)
            assert _refused(embedded.mqtts, "acme:tls-1", ca, None)
            # A certificate for the same Thing from another CA: refused at the handshake.
            foreign = CertificateAuthority.open(tmp_path / "elsewhere")
            forged = foreign.issue_with_new_key("acme:tls-1", days=1)
            assert forged.private_key_pem is not None
            forged_files = _write(
                tmp_path, "forged", forged.certificate_pem, forged.private_key_pem
            )
            assert _refused(embedded.mqtts, "acme:tls-1", ca, forged_files)
            # The device's CSR-signed certificate works for its own Thing.
            assert not _refused(embedded.mqtts, "acme:tls-2", ca, cert2)

            # Revoked: the live connection is cut and a reconnect refused.
            revoked = await api.delete(f"/api/v1/things/acme:tls-1/credentials/{made['id']}")
            assert revoked.status_code == 204

            async def gone() -> bool:
                thing = (await api.get("/api/v1/things/acme:tls-1")).json()
                return not device.client.is_connected() and thing["connected"] is False

            await eventually(gone, timeout=5)
        finally:
            device.client.loop_stop()
        assert _refused(embedded.mqtts, "acme:tls-1", ca, cert)
