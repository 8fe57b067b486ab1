"""`python -m iotas`: the `iotas` command."""

from iotas.cli.main import main

if __name__ == "__main__":
    main()
