"""Parsing command arguments: `k=v` pairs, JSON documents and times."""

from __future__ import annotations

import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import typer

from iotas.cli.context import InputError

RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*([smhdw])(?:\s+ago)?$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """`--label tier=edge --label site=x` -> {"tier": "edge", "site": "x"}."""
    out: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint=option)
        out[key] = value
    return out


def attributes(values: list[str] | None) -> dict[str, Any]:
    """`--attr site=plant-7` (a string) or `--attr floors:=3` (a JSON value)."""
    out: dict[str, Any] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key or key == ":":
            raise typer.BadParameter(
                f"expected KEY=TEXT or KEY:=JSON, got {item!r}", param_hint="--attr"
            )
        if key.endswith(":"):
            out[key[:-1]] = json_value(value, f"--attr {key[:-1]}")
        else:
            out[key] = value
    return out


def links(values: list[str] | None) -> list[dict[str, str]]:
    """`--link hosted-by=acme:gw-1` -> [{"rel": "hosted-by", "target": "acme:gw-1"}]."""
    out = []
    for item in values or []:
        rel, sep, target = item.partition("=")
        if not sep or not rel or not target:
            raise typer.BadParameter(f"expected REL=TARGET, got {item!r}", param_hint="--link")
        out.append({"rel": rel, "target": target})
    return out


def json_value(text: str, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None


def json_object(text: str | None, file: Path | None, what: str) -> dict[str, Any]:
    """A JSON object given inline, or in a file (`-` for stdin); exactly one of them."""
    if (text is None) == (file is None):
        raise InputError(f"give the {what} either inline or with --file, not both or neither")
    if file is not None:
        text = read_text(file)
    assert text is not None
    value = json_value(text, f"the {what}")
    if not isinstance(value, dict):
        raise InputError(f"the {what} must be a JSON object, got {type(value).__name__}")
    return value


def secrets(
    username: str | None, password_env: str | None, token_env: str | None
) -> dict[str, str] | None:
    """Credentials for a Thing's own API. Secrets are named by environment variable, never
    given on the command line (where `ps` and shell history would keep them)."""
    out: dict[str, str] = {}
    if username is not None:
        out["username"] = username
    for option, name, key in (
        ("--password-env", password_env, "password"),
        ("--token-env", token_env, "token"),
    ):
        if name is None:
            continue
        value = os.environ.get(name)
        if not value:
            raise InputError(f"{option}: the environment variable {name} is not set")
        out[key] = value
    if "username" in out and "password" not in out:
        raise InputError("--username needs --password-env too")
    return out or None


def read_text(file: Path) -> str:
    if str(file) == "-":
        return sys.stdin.read()
    try:
        return file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {file}: {exc.strerror or exc}") from None


def instant(text: str | None, option: str, *, now: datetime | None = None) -> str | None:
    """An RFC 3339 instant, `now`, or a time ago (`15m`, `-2h`, `3d ago`) -> RFC 3339 UTC."""
    if text is None:
        return None
    value = text.strip()
    now = now or datetime.now(UTC)
    if value.lower() == "now":
        return _rfc3339(now)
    match = RELATIVE.match(value.lower())
    if match:
        amount, unit = float(match[1]), UNITS[match[2]]
        return _rfc3339(now - timedelta(**{unit: amount}))
    iso = value[:-1] + "+00:00" if value.endswith(("z", "Z")) else value
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InputError(
            f"{option} must be an RFC 3339 time with a zone (2026-05-01T08:00:00Z), "
            f"'now', or a time ago like 15m, 2h, 3d; got {text!r}"
        )
    return _rfc3339(parsed)


def cause(text: str | None) -> str | None:
    # Any printable text: the SDK percent-encodes it as UTF-8 for the header (docs/api.md).
    if text is not None and not text.isprintable():
        raise InputError("--cause must be printable text (no control characters)")
    return text


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def future(text: str, flag: str) -> str:
    """An RFC 3339 time, or a time from now like 30d, 12h, 90m (for `--expires`)."""
    match = RELATIVE.match(text.strip().lower())
    if match and not text.strip().startswith("-") and "ago" not in text:
        delta = timedelta(**{UNITS[match[2]]: float(match[1])})
        return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")
    when = instant(text, flag)
    if when is None or text.strip().lower() == "now":
        raise InputError(f"{flag} must be in the future")
    return when
