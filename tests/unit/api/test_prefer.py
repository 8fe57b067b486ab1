"""`Prefer` (RFC 7240): `wait=N` and `respond-async` are read wherever they are in the
headers; anything else, malformed or not ASCII digits, is ignored rather than refused."""

from __future__ import annotations

import pytest

from iotas.api.prefer import MAX_WAIT_S, Preferences, preferences


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], Preferences()),
        (["wait=10"], Preferences(wait=10)),
        (["respond-async, wait=5"], Preferences(wait=5, respond_async=True)),
        (["handling=lenient", "Wait = 7 ; x=1"], Preferences(wait=7)),
        (['wait="3"'], Preferences(wait=3)),
        (["wait=1", "wait=2"], Preferences(wait=1)),
        (["wait=99999999"], Preferences(wait=MAX_WAIT_S)),
        # Not delta-seconds: ignored. ("²".isdigit() is true; int("²") raises.)
        (["wait=²", "wait=-1", "wait=1.5", "wait=", "wait"], Preferences()),
        (["respond-async=no"], Preferences()),
    ],
)
def test_preferences(headers: list[str], expected: Preferences) -> None:
    assert preferences(headers) == expected
