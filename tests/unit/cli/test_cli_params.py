"""Parsing CLI arguments: pairs, attributes, links, JSON and times."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer

from iotas.cli import params
from iotas.cli.context import ExitCode, InputError, exit_code_for
from iotas.sdk import ApiError, ConnectionFailed

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def test_pairs_attributes_links() -> None:
    assert params.pairs(["tier=edge", "empty="], "--label") == {"tier": "edge", "empty": ""}
    assert params.attributes(["site=plant-7", "floors:=3", "tags:=[1, 2]", "eq=a=b"]) == {
        "site": "plant-7",
        "floors": 3,
        "tags": [1, 2],
        "eq": "a=b",
    }
    assert params.links(["hosted-by=acme:gw-1"]) == [{"rel": "hosted-by", "target": "acme:gw-1"}]
    for bad in (lambda: params.pairs(["x"], "--label"), lambda: params.links(["rel="])):
        with pytest.raises(typer.BadParameter):
            bad()
    with pytest.raises(InputError, match="not valid JSON"):
        params.attributes(["n:={"])


def test_json_object(tmp_path: Path) -> None:
    assert params.json_object('{"a": 1}', None, "patch") == {"a": 1}
    path = tmp_path / "p.json"
    path.write_text('{"b": null}')
    assert params.json_object(None, path, "patch") == {"b": None}
    for text, file in (("[1]", None), ("{", None), (None, None), ("{}", path)):
        with pytest.raises(InputError):
            params.json_object(text, file, "patch")
    with pytest.raises(InputError, match="cannot read"):
        params.json_object(None, tmp_path / "missing.json", "patch")


def test_instants() -> None:
    assert params.instant(None, "--at") is None
    assert params.instant("now", "--at", now=NOW) == "2026-05-01T12:00:00Z"
    assert params.instant("90m", "--at", now=NOW) == "2026-05-01T10:30:00Z"
    assert params.instant("-2h", "--at", now=NOW) == "2026-05-01T10:00:00Z"
    assert params.instant("1d ago", "--at", now=NOW) == "2026-04-30T12:00:00Z"
    assert params.instant("2026-05-01T14:00:00+02:00", "--at") == "2026-05-01T12:00:00Z"
    assert params.instant("2026-05-01T12:00:00.5Z", "--at") == "2026-05-01T12:00:00.500000Z"
    for bad in ("2026-05-01T12:00:00", "yesterday", "", "5 parsecs"):
        with pytest.raises(InputError):
            params.instant(bad, "--at", now=NOW)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, ExitCode.INVALID),
        (401, ExitCode.AUTH),
        (403, ExitCode.AUTH),
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.CONFLICT),
        (412, ExitCode.CONFLICT),
        (422, ExitCode.INVALID),
        (500, ExitCode.FAILED),
    ],
)
def test_exit_codes(status: int, code: ExitCode) -> None:
    assert exit_code_for(ApiError(status, {})) == code


def test_unreachable_exit_code() -> None:
    assert exit_code_for(ConnectionFailed("http://x", "refused")) == ExitCode.UNREACHABLE
