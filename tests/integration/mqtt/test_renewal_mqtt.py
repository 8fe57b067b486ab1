"""A device renews its certificate over MQTT, on either transport: it publishes to
`things/{id}/renew` and gets the answer on `things/{id}/certificate`."""

from __future__ import annotations

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from integration.mqtt.mqtt_support import Iotas, eventually, ns


async def test_renewal_over_mqtt(iotas: Iotas) -> None:
    thing_id = f"{ns()}:cam-r"
    async with iotas.client() as api:
        secret = await iotas.register(api, thing_id)
        made = (
            await api.post(f"/api/v1/things/{thing_id}/credentials", json={"type": "x509"})
        ).json()
        device = iotas.device(thing_id, secret)
        try:
            device.client.subscribe(device.topic("certificate"), qos=1)
            await eventually(lambda: device.suback)

            def answers() -> list[dict[str, object]]:
                with device._lock:
                    got = list(device.messages)
                return [orjson.loads(p) for t, p in got if t == device.topic("certificate")]

            # A wrong serial: an error document, counted as bad input.
            device.send("renew", orjson.dumps({"serial": "abc123"})).wait_for_publish(5)
            await eventually(answers)
            assert answers()[0]["status"] == 404
            key = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_id)]))
                .sign(key, hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM)
                .decode()
            )
            request = {"serial": made["serial"], "csr": csr}
            device.send("renew", orjson.dumps(request)).wait_for_publish(5)
            await eventually(lambda: len(answers()) == 2)
            answer = answers()[1]
            assert "BEGIN CERTIFICATE" in str(answer["certificate"])
            assert "private_key" not in answer
            replaced = answer["replaces"]
            assert isinstance(replaced, dict) and replaced["id"] == made["id"]
            issued = x509.load_pem_x509_certificate(str(answer["certificate"]).encode())
            assert issued.public_key() == key.public_key()
        finally:
            device.close()
        listed = (await api.get(f"/api/v1/things/{thing_id}/credentials")).json()["items"]
        certificates = [c for c in listed if c["type"] == "x509"]
        assert len(certificates) == 2 and certificates[0]["expires_at"] is not None
        history = (await api.get(f"/api/v1/things/{thing_id}/history")).json()["items"]
        renewal = [e for e in history if e["type"] == "credential_added"][-1]
        assert renewal["actor"] == thing_id and renewal["patch"]["replaces"] == made["id"]
        rejected = await iotas.rejected(api)
        assert rejected.get("bad_renew") == 1
