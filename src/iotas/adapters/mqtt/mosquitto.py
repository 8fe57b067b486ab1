"""Mosquitto as the external broker of the MQTT adapter: its configuration, generated from the
password hashes iotas exports (`iotas broker-config mosquitto` writes it; cli/broker_config.py
is the command, this is what it writes and why).

Mosquitto's password file cannot hold a user name with `:` (every Thing id has one), so the
configuration uses its dynamic security plugin instead, whose JSON file accepts any user
name and stores the same PBKDF2-SHA512 values iotas keeps (iterations, salt, key)."""

from __future__ import annotations

import datetime as dt
import glob
import ipaddress
import os
import string
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cryptography import x509

from iotas.adapters.mqtt import dynsec as dynsec_plugin
from iotas.domain.secrets import PasswordHash

SERVICE_USER = "iotas"
SERVICE_ROLE = "iotas"
DYNSEC_FILE = "dynamic-security.json"
CONF_FILE = "mosquitto.conf"
SECRET_FILE = "iotas.secret"  # noqa: S105 (a file name)
URL_FILE = "iotas-mqtt-url"
CA_FILE = "ca.crt"
SERVER_CERT_FILE = "server.crt"
SERVER_KEY_FILE = "server.key"
CRL_FILE = "crl.pem"
# A server certificate closer than this to its end is issued again.
RENEW_BEFORE = dt.timedelta(days=30)
WILDCARDS = ("0.0.0.0", "::", "")  # noqa: S104 (compared, not bound)
PLUGIN_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",  # Debian, Ubuntu
    "/usr/lib/*-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/mosquitto_dynamic_security.so",  # the eclipse-mosquitto image, Alpine
    "/usr/lib64/mosquitto_dynamic_security.so",
    "/usr/local/lib/mosquitto_dynamic_security.so",
    "/opt/homebrew/lib/mosquitto_dynamic_security.so",
)
SECRET_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
# Anything not granted by a role is refused; unsubscribing is harmless.
DEFAULT_ACL_ACCESS = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}


def dynsec_document(
    rows: Iterable[Any], service_hash: str, certified: Iterable[str] = ()
) -> tuple[dict[str, Any], int, int, int]:
    """The dynamic security plugin's JSON: (document, Things, damaged hashes, Things with
    more than one active password). `rows` come in Thing order, each Thing's newest last;
    `certified` Things (an active certificate) get their client and role too, without a
    password when they have none: they log in on the TLS listener, where Mosquitto makes
    the certificate's name their user name, and the plugin then applies their role."""
    newest: dict[str, PasswordHash] = {}
    seen: dict[str, int] = {}
    skipped = 0
    for row in rows:
        try:
            thing_id = str(row["thing_id"])
            parsed = PasswordHash.parse(str(row["secret_hash"]))
        except (KeyError, TypeError, ValueError):
            skipped += 1
            continue
        newest[thing_id] = parsed  # the last one of a Thing is its newest
        seen[thing_id] = seen.get(thing_id, 0) + 1
    everyone: dict[str, PasswordHash | None] = {t: None for t in certified}
    everyone.update(newest)
    everyone.pop(SERVICE_USER, None)  # not a Thing id (no ':'), but never let one shadow it
    clients = [
        _client(thing_id, h, dynsec_plugin.thing_role(thing_id), thing_id)
        for thing_id, h in sorted(everyone.items())
    ]
    clients.append(_client(SERVICE_USER, PasswordHash.parse(service_hash), SERVICE_ROLE, None))
    roles = [_role(dynsec_plugin.thing_role(t), [f"things/{t}/#"], []) for t in sorted(everyone)]
    # iotas' own account may also command the dynamic security plugin: it disables the
    # broker account of a Thing left without credentials (revoked, quarantined), which cuts
    # its session at once instead of at the next configuration.
    roles.append(
        _role(SERVICE_ROLE, ["things/#", dynsec_plugin.CONTROL_FILTER], ["$share/iotas/things/#"])
    )
    document = {
        "defaultACLAccess": DEFAULT_ACL_ACCESS,
        "clients": clients,
        "groups": [],
        "roles": roles,
    }
    return document, len(everyone), skipped, sum(n > 1 for n in seen.values())


def _client(username: str, hashed: PasswordHash | None, role: str, clientid: str | None) -> Any:
    client: dict[str, Any] = {"username": username, "roles": [{"rolename": role}]}
    if hashed is not None:
        # Without a password the plugin never accepts a password login for the client.
        client |= {
            "password": hashed.b64_key,
            "salt": hashed.b64_salt,
            "iterations": hashed.iterations,
        }
    if clientid is not None:
        # Binding the client id stops one device from taking over another's session.
        client["clientid"] = clientid
    return client


def _role(name: str, topics: list[str], subscribe_only: list[str]) -> dict[str, Any]:
    # Mosquitto 2.0's plugin does not expand %u in ACL topics, hence a role per Thing.
    acls = [
        {"acltype": acltype, "topic": topic, "allow": True}
        for topic in topics
        for acltype in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    acls += [{"acltype": "subscribePattern", "topic": t, "allow": True} for t in subscribe_only]
    return {"rolename": name, "acls": acls}


def mosquitto_conf(
    *,
    host: str,
    port: int,
    plugin: str,
    dynsec: Path,
    things: int,
    generated_at: str,
    tls_port: int | None = None,
    directory: Path | None = None,
) -> str:
    tls = ""
    if tls_port is not None and directory is not None:
        tls = (
            "\n# Devices with iotas certificates. Mosquitto verifies the chain against iotas' CA\n"
            "# and the CRL; the certificate's common name (the Thing id) becomes the user name\n"
            "# and the client id, and the plugin gives it that Thing's role. Rerun and restart\n"
            "# within 30 days: an expired CRL makes Mosquitto refuse every certificate.\n"
            f"listener {tls_port} {host}\n"
            f"cafile {directory / CA_FILE}\n"
            f"certfile {directory / SERVER_CERT_FILE}\n"
            f"keyfile {directory / SERVER_KEY_FILE}\n"
            f"crlfile {directory / CRL_FILE}\n"
            "require_certificate true\n"
            "use_identity_as_username true\n"
            "use_username_as_clientid true\n"
        )
    return (
        f"# Written by `iotas broker-config mosquitto` for {things} Things"
        f" (credentials as of {generated_at}).\n"
        "# Run it again and restart Mosquitto after adding or revoking credentials: Mosquitto\n"
        "# 2.0 reads the dynamic security file only when it starts.\n"
        "per_listener_settings false\n"
        "# iotas acknowledges telemetry once a batch is committed, and on SQLite commits wait\n"
        "# while staged samples move (up to about a second under load): keep sending meanwhile,\n"
        "# and keep a backlog while iotas is away (docs/mqtt.md).\n"
        "max_inflight_messages 20000\n"
        "max_queued_messages 1000000\n"
        f"listener {port} {host}\n"
        "allow_anonymous false\n"
        f"plugin {plugin}\n"
        f"plugin_opt_config_file {dynsec}\n"
    ) + tls


def server_cert_fits(out: Path, ca_pem: str, hosts: list[str]) -> bool:
    try:
        current = x509.load_pem_x509_certificate((out / SERVER_CERT_FILE).read_bytes())
        ca = x509.load_pem_x509_certificate(ca_pem.encode())
        if not (out / SERVER_KEY_FILE).exists():
            return False
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    names = sorted(
        [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        + san.get_values_for_type(x509.DNSName)
    )
    wanted = sorted(_normal(h) for h in hosts)
    soon = dt.datetime.now(dt.UTC) + RENEW_BEFORE
    return current.issuer == ca.subject and names == wanted and current.not_valid_after_utc > soon


def _normal(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def find_plugin() -> str:
    for pattern in PLUGIN_CANDIDATES:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return PLUGIN_CANDIDATES[0]


def read_secret(path: Path) -> str | None:
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return secret or None


def write_file(path: Path, text: str, mode: int, uid: int | None = None) -> None:
    """Replace `path` at once (a broker starting meanwhile reads the old or the new file,
    never half of one), created with `mode` so a secret is never readable by others."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        if uid is not None:
            os.fchown(fd, uid, -1)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            fd = -1
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if fd != -1:
            os.close(fd)
        if temporary.exists():
            temporary.unlink()
