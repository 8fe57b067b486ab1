"""`iotas ca init|show`: iotas' certificate authority."""

from __future__ import annotations

import typer

from iotas.cli.context import ExitCode, cli_of
from iotas.cli.options import JsonFlag
from iotas.cli.up import DataDir
from iotas.services.ca import CA_CERT, CA_DIR, CertificateAuthority
from iotas.settings import Settings

app = typer.Typer(
    no_args_is_help=True, help="iotas' certificate authority for device certificates."
)


@app.command("init")
def init(ctx: typer.Context, data_dir: DataDir = None, json_: JsonFlag = False) -> None:
    """Make the CA key and certificate in the data directory (the server also does it on first
    start); an existing CA is kept."""
    cli = cli_of(ctx, json_)
    settings = Settings.from_env(data_dir=data_dir)
    if settings.ca_cert_file is not None:
        cli.fail("IOTAS_CA_CERT names an operator CA: there is nothing to make", ExitCode.USAGE)
    existed = (settings.data_dir / CA_DIR / CA_CERT).exists()
    ca = CertificateAuthority.open(settings.data_dir)
    path = settings.data_dir / CA_DIR
    if cli.out.json_mode:
        cli.out.json({"path": str(path), "created": not existed, "certificate": ca.certificate_pem})
        return
    verb = "kept the existing" if existed else "made a new"
    cli.out.info(f"iotas {verb} CA in [bold]{path}[/bold] (the key readable by its owner only)")
    typer.echo(ca.certificate_pem, nl=False)


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the server's CA certificate (PEM), for devices and brokers to trust."""
    cli = cli_of(ctx, False)
    typer.echo(cli.run(lambda client: client.ca_certificate()), nl=False)
