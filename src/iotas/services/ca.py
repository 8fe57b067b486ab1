"""iotas' certificate authority: signs device certificates whose subject and SAN carry the
Thing id.

On first start the CA's key and self-signed certificate are made in `<data-dir>/ca/` (the key
mode 0600); an operator's own CA is used instead when `IOTAS_CA_CERT` and `IOTAS_CA_KEY` name
its files. Device keys are made on the device (it sends a CSR) or, for convenience, here,
returned once and never kept. Keys are ECDSA P-256: small certificates for small devices, and
what every TLS stack of the last decade speaks.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iotas.domain.errors import InvalidInput

CA_DIR = "ca"
CA_KEY = "ca.key"
CA_CERT = "ca.crt"
CA_YEARS = 10
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
SERVER_DAYS = 397  # what browsers and most TLS clients accept for a server certificate
MAX_CSR_BYTES = 16 * 1024
CRL_DAYS = 30
MIN_RSA_BITS = 2048
EC_CURVES = (ec.SECP256R1, ec.SECP384R1)


@dataclass(frozen=True, slots=True)
class Issued:
    certificate_pem: str
    serial: int
    fingerprint: str  # sha256 of the DER certificate, hex
    not_before: dt.datetime
    not_after: dt.datetime
    private_key_pem: str | None = None  # only when iotas made the key


class CertificateAuthority:
    def __init__(self, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, cert: x509.Certificate):
        self.key = key
        self.cert = cert

    @classmethod
    def open(
        cls, data_dir: Path, *, cert_file: Path | None = None, key_file: Path | None = None
    ) -> CertificateAuthority:
        """The operator's CA (both files given), or the one in the data directory, made on
        first use."""
        if (cert_file is None) != (key_file is None):
            raise ValueError("an operator CA needs both its certificate and its key file")
        if cert_file is not None and key_file is not None:
            return cls._load(cert_file, key_file)
        folder = data_dir / CA_DIR
        if not (folder / CA_KEY).exists():
            cls._create(folder)
        return cls._load(folder / CA_CERT, folder / CA_KEY)

    @classmethod
    def _load(cls, cert_file: Path, key_file: Path) -> CertificateAuthority:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("the CA key must be an EC or RSA private key")
        return cls(key, cert)

    @staticmethod
    def _create(folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iotas"),
                x509.NameAttribute(NameOID.COMMON_NAME, f"iotas CA {os.urandom(4).hex()}"),
            ]
        )
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365 * CA_YEARS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(folder / CA_KEY, key, os.O_EXCL)
        (folder / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    @property
    def certificate_pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def sign_csr(self, thing_id: str, csr_pem: object, *, days: int) -> Issued:
        """A client certificate for the key in `csr_pem` (whose signature proves the device
        holds it); subject and SAN are the Thing id, whatever the CSR asked for."""
        if not isinstance(csr_pem, str) or not csr_pem.strip():
            raise InvalidInput("csr must be a PEM certificate signing request", field="csr")
        if len(csr_pem) > MAX_CSR_BYTES:
            raise InvalidInput(f"a CSR may be at most {MAX_CSR_BYTES} bytes", field="csr")
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise InvalidInput(
                "csr is not a PEM certificate signing request "
                "(-----BEGIN CERTIFICATE REQUEST-----)",
                field="csr",
            ) from None
        if not csr.is_signature_valid:
            raise InvalidInput("the CSR's signature does not match its key", field="csr")
        public_key = csr.public_key()
        _check_key(public_key)
        return self._issue(thing_id, public_key, days)

    def issue_with_new_key(self, thing_id: str, *, days: int) -> Issued:
        """A key made here and its certificate: the key is in the answer only."""
        key = ec.generate_private_key(ec.SECP256R1())
        issued = self._issue(thing_id, key.public_key(), days)
        pem = _key_pem(key)
        return Issued(
            issued.certificate_pem,
            issued.serial,
            issued.fingerprint,
            issued.not_before,
            issued.not_after,
            pem,
        )

    def crl_pem(
        self, revoked: list[tuple[int, dt.datetime]], *, next_update_days: int = CRL_DAYS
    ) -> str:
        """A certificate revocation list of `revoked` (serial, when), signed by the CA: for a
        broker that checks certificates itself (Mosquitto's `crlfile`). It is numbered by its
        time of issue so a newer one always has the larger number; a broker refuses every
        client once `next_update` has passed, so it must be fetched again before then."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=next_update_days))
            .add_extension(x509.CRLNumber(int(now.timestamp() * 1_000_000)), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        for serial, revoked_at in revoked:
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(min(revoked_at, now))
                .build()
            )
            builder = builder.add_revoked_certificate(entry)
        crl = builder.sign(self.key, hashes.SHA256())
        return crl.public_bytes(serialization.Encoding.PEM).decode()

    def _issue(self, thing_id: str, public_key: object, days: int) -> Issued:
        now = dt.datetime.now(dt.UTC)
        not_before = now - dt.timedelta(minutes=5)  # clocks of small devices drift
        not_after = now + dt.timedelta(days=days)
        if not_after > self.cert.not_valid_after_utc:
            not_after = self.cert.not_valid_after_utc
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, thing_id)]))
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(thing_id)]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            cert.public_bytes(serialization.Encoding.PEM).decode(),
            cert.serial_number,
            cert.fingerprint(hashes.SHA256()).hex(),
            not_before,
            not_after,
        )


def server_files(ca: CertificateAuthority, folder: Path, hosts: list[str]) -> tuple[Path, Path]:
    """A TLS server certificate from the CA for `hosts` (names and IP addresses), with its
    key (0600), in `folder`: (certificate file, key file). Kept across restarts and issued
    again when missing, for other hosts, or within 30 days of its end. What the HTTPS API
    and the MQTT TLS listener present, so devices need to trust nothing but the CA."""
    cert_path, key_path = folder / SERVER_CERT, folder / SERVER_KEY
    wanted = sorted(set(hosts))
    if cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
        if (
            _hosts_of(current) == wanted
            and current.not_valid_after_utc > soon
            and (current.issuer == ca.cert.subject)
        ):
            return cert_path, key_path
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(ca, key.public_key(), wanted)
    folder.mkdir(parents=True, exist_ok=True)
    _write_key(key_path, key, os.O_TRUNC)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def issue_server(ca: CertificateAuthority, hosts: list[str]) -> tuple[str, str]:
    """(certificate PEM, key PEM) of a new TLS server certificate for `hosts`: for a broker
    elsewhere (Mosquitto) that devices reach with their iotas certificates."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _server_certificate(ca, key.public_key(), sorted(set(hosts)))
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


def _server_certificate(
    ca: CertificateAuthority, public_key: ec.EllipticCurvePublicKey, wanted: list[str]
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = []
    for host in wanted:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
        .issuer_name(ca.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=SERVER_DAYS), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )


def tls_files(ca: CertificateAuthority, folder: Path, hosts: list[str]) -> tuple[Path, Path, Path]:
    """(server certificate, its key, the CA certificate to verify clients with): what a TLS
    listener of iotas (HTTPS, MQTT over TLS) needs. Wildcard addresses are left out of the
    names; loopback is always in."""
    names = [h for h in {*hosts, "localhost", "127.0.0.1"} if h not in ("", "0.0.0.0", "::")]  # noqa: S104
    cert_file, key_file = server_files(ca, folder, names)
    trusted = folder / "trusted-ca.crt"
    trusted.write_text(ca.certificate_pem)
    return cert_file, key_file, trusted


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, mode_flag: int) -> None:
    # Created 0600 from the start (not chmod-ed after): the key is never readable by others.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode_flag, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(_key_pem(key))


def _hosts_of(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return sorted(
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        + san.get_values_for_type(x509.DNSName)
    )


def thing_of_certificate(pem: str) -> tuple[str, str] | None:
    """(Thing id, sha256 fingerprint hex) of a device certificate iotas issued: the id is its
    SAN URI (which `_issue` sets to the Thing id), else its common name. None if unreadable."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return None
    thing_id: str | None = None
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        thing_id = uris[0] if uris else None
    except x509.ExtensionNotFound:
        pass
    if thing_id is None:
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        thing_id = str(names[0].value) if names else None
    if thing_id is None:
        return None
    return thing_id, cert.fingerprint(hashes.SHA256()).hex()


def _check_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, EC_CURVES):
            raise InvalidInput("EC keys must be on P-256 or P-384", field="csr")
        return
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInput(f"RSA keys must have at least {MIN_RSA_BITS} bits", field="csr")
        return
    if isinstance(key, ed25519.Ed25519PublicKey):
        return
    raise InvalidInput("the CSR's key must be EC (P-256, P-384), RSA or Ed25519", field="csr")
