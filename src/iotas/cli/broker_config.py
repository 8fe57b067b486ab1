"""`iotas broker-config mosquitto`: configure an external Mosquitto for iotas' devices (the
generator is the MQTT adapter's, `iotas.adapters.mqtt.mosquitto`; this is the command).

Mosquitto's password file cannot hold a user name with `:` (every Thing id has one), so the
configuration uses its dynamic security plugin instead, whose JSON file accepts any user
name and stores the same PBKDF2-SHA512 values iotas keeps (iterations, salt, key). iotas
therefore writes it from the hashes the server exports, without knowing any device secret.
docs/deployment.md ("External MQTT brokers") says why and how to run it.

Written to the output directory:

- `dynamic-security.json` (0600, hashes): one client per Thing (user name and client id
  are the Thing id) with a role that reaches only `things/<id>/#`, and the service user
  `iotas` with `things/#` and `$share/iotas/things/#`;
- `mosquitto.conf`: the listener, `allow_anonymous false` and the plugin;
- `iotas.secret` (0600): the service user's secret, kept across runs so that regenerating
  (to apply a revocation) does not change it; `--rotate-service-secret` makes a new one;
- `iotas-mqtt-url` (0600): `mqtt://iotas:<secret>@host:port`, for `iotas up --mqtt-url`.

With `--tls-port`, also a listener where devices log in with their iotas certificates
(Mosquitto checks the chain against iotas' CA and the CRL, takes the certificate's common
name, the Thing id, as user name and client id, and the same per-Thing roles apply):

- `ca.crt`: iotas' CA certificate (`cafile`);
- `server.crt`, `server.key` (0600): the listener's certificate, issued by iotas' CA for
  `--host`, localhost, 127.0.0.1 and every `--server-name`; kept across runs while it fits;
- `crl.pem`: the CA's revocation list (`crlfile`), valid for 30 days: run this again (and
  restart Mosquitto) before then, or Mosquitto refuses every certificate.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from iotas.adapters.mqtt.mosquitto import (
    CA_FILE,
    CONF_FILE,
    CRL_FILE,
    DYNSEC_FILE,
    SECRET_CHARS,
    SECRET_FILE,
    SERVER_CERT_FILE,
    SERVER_KEY_FILE,
    SERVICE_USER,
    URL_FILE,
    WILDCARDS,
    dynsec_document,
    find_plugin,
    mosquitto_conf,
    read_secret,
    server_cert_fits,
    write_file,
)
from iotas.cli.context import ExitCode, cli_of
from iotas.cli.options import JsonFlag
from iotas.domain.secrets import hash_secret, new_secret
from iotas.sdk import Client

app = typer.Typer(no_args_is_help=True, help="Configure an external MQTT broker for iotas.")


@app.command("mosquitto")
def mosquitto(
    ctx: typer.Context,
    out: Annotated[
        Path, typer.Option("--out", help="Directory to write the files to.", metavar="DIR")
    ],
    port: Annotated[int, typer.Option("--port", help="Port Mosquitto listens on.")] = 1883,
    host: Annotated[str, typer.Option("--host", help="Address Mosquitto listens on.")] = (
        "127.0.0.1"
    ),
    plugin: Annotated[
        str | None,
        typer.Option(
            "--plugin",
            help="Path of mosquitto_dynamic_security.so (found in the usual places if not given).",
            metavar="PATH",
        ),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner",
            help="Give dynamic-security.json to this user (the one Mosquitto runs as, such as "
            "mosquitto), since Mosquitto reads it after dropping root.",
            metavar="USER",
        ),
    ] = None,
    rotate: Annotated[
        bool,
        typer.Option("--rotate-service-secret", help="Make a new secret for the iotas user."),
    ] = False,
    tls_port: Annotated[
        int | None,
        typer.Option(
            "--tls-port",
            help="Also a TLS listener on this port (8883 is usual) where devices log in with "
            "their iotas certificates.",
        ),
    ] = None,
    server_names: Annotated[
        list[str] | None,
        typer.Option(
            "--server-name",
            help="A DNS name or address devices reach the TLS listener at (repeatable; "
            "--host, localhost and 127.0.0.1 are always in its certificate).",
            metavar="NAME",
        ),
    ] = None,
    json_: JsonFlag = False,
) -> None:
    """Write a Mosquitto configuration that authenticates every Thing by its credentials.

    Run again and restart Mosquitto after credentials change (it reads them only at start).
    """
    cli = cli_of(ctx, json_)
    if not 0 < port < 65536:
        raise typer.BadParameter("a port is 1 to 65535", param_hint="--port")
    if tls_port is not None and not (0 < tls_port < 65536 and tls_port != port):
        raise typer.BadParameter("a port is 1 to 65535, other than --port", param_hint="--tls-port")
    uid = None
    if owner is not None:
        try:
            uid = pwd.getpwnam(owner).pw_uid
        except KeyError:
            raise typer.BadParameter(f"there is no user {owner!r}", param_hint="--owner") from None
    plugin_path = plugin or find_plugin()
    exported = cli.run(lambda client: client.broker_credentials())
    rows = exported.get("credentials")
    if not isinstance(rows, list):
        cli.fail("the server's answer has no credential list", ExitCode.FAILED)
    certified = [
        str(row["thing_id"])
        for row in exported.get("certificates") or []
        if isinstance(row, dict) and isinstance(row.get("thing_id"), str)
    ]
    hosts = sorted({host, "localhost", "127.0.0.1", *(server_names or [])} - set(WILDCARDS))
    tls: TlsFiles | None = None
    if tls_port is not None:
        tls = fetch_tls(cli.run, out, hosts)

    out.mkdir(parents=True, exist_ok=True)
    secret = None if rotate else read_secret(out / SECRET_FILE)
    if secret is None:
        secret = new_secret()
    elif not SECRET_CHARS.issuperset(secret):
        cli.fail(
            f"{out / SECRET_FILE} must hold letters, digits, '-' and '_' only (it goes into a "
            "URL); fix it or use --rotate-service-secret",
            ExitCode.INVALID,
        )
    document, things, skipped, several = dynsec_document(
        rows, hash_secret(secret), certified if tls is not None else ()
    )
    directory = out.resolve()
    try:
        write_file(out / SECRET_FILE, secret + "\n", mode=0o600)
        url_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        write_file(out / URL_FILE, f"mqtt://{SERVICE_USER}:{secret}@{url_host}:{port}\n", 0o600)
        write_file(
            out / DYNSEC_FILE,
            orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n",
            mode=0o600,
            uid=uid,
        )
        if tls is not None:
            write_file(out / CA_FILE, tls.ca, mode=0o644)
            write_file(out / CRL_FILE, tls.crl, mode=0o644)
            if tls.server is not None:
                # The key first: a certificate without its key is of no use to a broker.
                write_file(out / SERVER_KEY_FILE, tls.server[1], mode=0o600, uid=uid)
                write_file(out / SERVER_CERT_FILE, tls.server[0], mode=0o644)
        write_file(
            out / CONF_FILE,
            mosquitto_conf(
                host=host,
                port=port,
                plugin=plugin_path,
                dynsec=directory / DYNSEC_FILE,
                things=things,
                generated_at=str(exported.get("generated_at", "")),
                tls_port=tls_port,
                directory=directory,
            ),
            mode=0o644,
        )
    except PermissionError as exc:
        cli.fail(
            f"cannot write {exc.filename}: {exc.strerror} (is --owner allowed here?)",
            ExitCode.FAILED,
        )

    report = {
        "dir": str(directory),
        "things": things,
        "service_user": SERVICE_USER,
        "files": {
            "conf": str(directory / CONF_FILE),
            "dynamic_security": str(directory / DYNSEC_FILE),
            "service_secret": str(directory / SECRET_FILE),
            "service_url": str(directory / URL_FILE),
        },
        "plugin": plugin_path,
        "skipped": skipped,
        "several_passwords": several,
    }
    if tls is not None:
        report["tls"] = {
            "port": tls_port,
            "certificate_things": len(certified),
            "server_names": hosts,
            "server_certificate_issued": tls.server is not None,
            "files": {
                "ca": str(directory / CA_FILE),
                "certificate": str(directory / SERVER_CERT_FILE),
                "key": str(directory / SERVER_KEY_FILE),
                "crl": str(directory / CRL_FILE),
            },
        }
    if cli.out.json_mode:
        cli.out.json(report)
        return
    cli.out.info(f"Wrote the Mosquitto configuration for {things} Things to {directory}:")
    cli.out.info(f"  {CONF_FILE}          run: mosquitto -c {directory / CONF_FILE}")
    cli.out.info(f"  {DYNSEC_FILE}  devices, their hashes and topics (mode 0600)")
    cli.out.info(
        f"  {SECRET_FILE}, {URL_FILE}  the iotas user (mode 0600): iotas up --mqtt-url ..."
    )
    if several:
        cli.out.info(
            f"[yellow]{several} Things have more than one active password; Mosquitto accepts "
            "only the newest of each.[/yellow]"
        )
    if tls is not None:
        cli.out.info(
            f"  TLS on port {tls_port}: {CA_FILE}, {SERVER_CERT_FILE}, {SERVER_KEY_FILE}, "
            f"{CRL_FILE} ({len(certified)} Things with certificates)"
        )
        cli.out.info(
            "[yellow]The CRL is valid for 30 days: run this again (and restart Mosquitto) "
            "before then, and after every revocation.[/yellow]"
        )
    if skipped:
        cli.out.info(f"[yellow]{skipped} damaged hashes were left out.[/yellow]")
    if not os.path.exists(plugin_path):
        cli.out.info(f"[yellow]{plugin_path} does not exist here; pass --plugin.[/yellow]")
    cli.out.info("Restart Mosquitto to apply (it reads the plugin's file only at start).")


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: str
    crl: str
    server: tuple[str, str] | None  # (certificate, key) when issued now; None: keep the files


def fetch_tls(
    run: Callable[[Callable[[Client], Awaitable[Any]]], Any], out: Path, hosts: list[str]
) -> TlsFiles:
    """The CA certificate and CRL from the server, and a server certificate from its CA
    unless the one in `out` is still good: issued by this CA, for these hosts, and not
    within 30 days of its end (a new key at every run would only churn the broker)."""
    ca_pem = str(run(lambda client: client.ca_certificate()))
    crl_pem = str(run(lambda client: client.ca_crl()))
    if server_cert_fits(out, ca_pem, hosts):
        return TlsFiles(ca_pem, crl_pem, None)
    issued = run(lambda client: client.issue_server_certificate(hosts))
    return TlsFiles(ca_pem, crl_pem, (str(issued["certificate"]), str(issued["private_key"])))
