"""What every command shares: connection options, output mode, and running an SDK call with
errors turned into the exit codes documented in docs/cli.md."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import NoReturn, TypeVar

import httpx
import typer

from iotas.cli.output import Output
from iotas.sdk import ApiError, Client, ConnectionFailed

T = TypeVar("T")

DEFAULT_DATA_DIR = Path("iotas-data")


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    NOT_FOUND = 3
    CONFLICT = 4
    AUTH = 5
    UNREACHABLE = 6
    INVALID = 7
    PENDING = 8  # `invoke --wait`: still not ended when the wait gave up


STATUS_EXIT = {
    400: ExitCode.INVALID,
    401: ExitCode.AUTH,
    403: ExitCode.AUTH,
    404: ExitCode.NOT_FOUND,
    409: ExitCode.CONFLICT,
    412: ExitCode.CONFLICT,
    415: ExitCode.INVALID,
    422: ExitCode.INVALID,
}


class InputError(Exception):
    """A command argument that parses but makes no sense (bad JSON, bad time): exit 7."""


def exit_code_for(error: ApiError) -> ExitCode:
    if isinstance(error, ConnectionFailed):
        return ExitCode.UNREACHABLE
    return STATUS_EXIT.get(error.status, ExitCode.FAILED)


@dataclass(frozen=True, slots=True)
class Options:
    """The root options (`iotas --url ... --token ... --json <command>`)."""

    url: str | None = None
    token: str | None = None
    json: bool = False


def token_files() -> list[Path]:
    """Where a local `iotas up` keeps the admin token, in the order the CLI looks."""
    candidates = []
    if os.environ.get("IOTAS_DATA_DIR"):
        candidates.append(Path(os.environ["IOTAS_DATA_DIR"]) / "admin-token")
    candidates.append(DEFAULT_DATA_DIR / "admin-token")
    return candidates


def find_token() -> tuple[str, Path] | None:
    """The admin token a local `iotas up` wrote, and its file, when no token was given."""
    for path in token_files():
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if token:
            return token, path
    return None


def token_hint(options: Options, found: Path | None) -> str:
    """What to do about a 401: say which token was sent, or that none was, and where one is."""
    if options.token:
        sent = "the token from --token or IOTAS_TOKEN was refused"
    elif found is not None:
        sent = f"the token in {found} was refused (another server's?)"
    else:
        looked = " or ".join(str(path) for path in token_files())
        sent = f"no API token was sent (none given, no {looked} here)"
    return (
        f"{sent}: set IOTAS_TOKEN (or pass --token). The admin token is in the server's "
        "<data dir>/admin-token: ./iotas-data/admin-token in the directory where `iotas up` "
        "was started (iotas finds it there on its own, or anywhere with IOTAS_DATA_DIR)."
    )


class Cli:
    """One command invocation: options resolved, output chosen."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.out = Output(json_mode=options.json)

    def client(self) -> Client:
        return Client(self.options.url, self._token()[0])

    def _token(self) -> tuple[str | None, Path | None]:
        if self.options.token:
            return self.options.token, None
        found = find_token()
        return (None, None) if found is None else found

    def run(self, call: Callable[[Client], Awaitable[T]], *, until_interrupted: bool = False) -> T:
        """Run `call` with a connected client; exit with the right code on failure. With
        `until_interrupted`, Ctrl-C ends the command normally (exit 0)."""

        async def main() -> T:
            async with self.client() as client:
                return await call(client)

        self.check_url()
        try:
            return asyncio.run(main())
        except ApiError as exc:
            message = str(exc)
            if exc.status == 401:
                message += "\n" + token_hint(self.options, self._token()[1])
            self.fail(message, exit_code_for(exc), problem=exc.problem)
        except InputError as exc:
            self.fail(str(exc), ExitCode.INVALID)
        except KeyboardInterrupt:
            raise typer.Exit(ExitCode.OK if until_interrupted else 130) from None

    def check_url(self) -> None:
        url = self.options.url
        if url is None:
            return
        problem = None
        if not url.startswith(("http://", "https://")):
            problem = "it must start with http:// or https://"
        else:
            try:
                httpx.URL(url)
            except httpx.InvalidURL as exc:
                problem = str(exc)
        if problem:
            self.fail(f"--url {url!r} is not a valid URL: {problem}", ExitCode.USAGE)

    def check(self, parse: Callable[[], T]) -> T:
        """Run a local argument parser, turning `InputError` into exit 7."""
        try:
            return parse()
        except InputError as exc:
            self.fail(str(exc), ExitCode.INVALID)

    def confirm(self, question: str, *, yes: bool) -> None:
        """Ask before something that cannot be undone, unless `--yes` was given."""
        if not yes and not typer.confirm(question, err=True):
            self.fail("not confirmed (use --yes to skip the question)", ExitCode.FAILED)

    def fail(
        self, message: str, code: ExitCode, *, problem: dict[str, object] | None = None
    ) -> NoReturn:
        self.out.error(message, problem)
        raise typer.Exit(code)


def cli_of(ctx: typer.Context, json_flag: bool = False) -> Cli:
    options = ctx.find_root().obj
    if not isinstance(options, Options):
        options = Options()
    if json_flag and not options.json:
        options = Options(options.url, options.token, json=True)
    return Cli(options)
