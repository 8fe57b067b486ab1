"""The `iotas` command line (Typer + rich); `iotas.cli.main:main` is the entry point."""
