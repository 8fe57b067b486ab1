"""The two failure allowances of services/auth.py (decision 48): API credentials are always
checked (a valid one is never refused; failures past the allowance are 429), MQTT logins are
refused before their hash past the allowance of their address and user name, or of their
address as a whole; one realm's failures never touch the other's."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from iotas.domain.errors import TooManyRequests, Unauthenticated
from iotas.services.auth import ADDRESS_SPREAD, Authenticator
from iotas.services.context import Actor

VALID = Actor("admin", "admin", None)


class _Checks(Authenticator):
    """Token lookups without a database: "Bearer good" is the one valid token (the
    allowances, the subject here, sit in front of the lookup and do not care how it works)."""

    def __init__(self, **options: Any) -> None:
        unused: Any = None
        super().__init__(unused, **options)

    async def _authenticate(self, authorization: str | None) -> Actor:
        if authorization != "Bearer good":
            self.failures["unknown"] += 1
            raise Unauthenticated("the token is unknown, expired or revoked")
        return VALID


async def test_a_valid_token_is_never_refused_for_others_failures() -> None:
    auth = _Checks(failure_burst=20, failure_refill=0.001)
    outcomes = []
    for i in range(25):
        try:
            await auth.authenticate(f"Bearer wrong-{i}", "10.0.0.1")
        except TooManyRequests as exc:
            assert exc.extra["retry_after"] >= 1
            outcomes.append(429)
        except Unauthenticated:
            outcomes.append(401)
    assert outcomes == [401] * 20 + [429] * 5
    assert await auth.authenticate("Bearer good", "10.0.0.1") is VALID
    assert auth.failures == {"unknown": 25, "rate_limited": 5}
    # The MQTT realm has not been charged for any of it.
    assert auth.reserve("10.0.0.1", "acme:d") is not None


async def test_mqtt_failures_do_not_charge_the_api_realm() -> None:
    auth = _Checks(failure_burst=3, failure_refill=0.001)
    for _ in range(3):
        ticket = auth.reserve("10.0.0.2", "acme:d")
        assert ticket is not None
        auth.settle(ticket, False, "mqtt")
    assert auth.reserve("10.0.0.2", "acme:d") is None  # refused before its hash
    assert auth.failures["mqtt"] == 3 and auth.failures["mqtt_rate_limited"] == 1
    with pytest.raises(Unauthenticated):  # a 401, not a 429: the API allowance is whole
        await auth.authenticate("Bearer wrong", "10.0.0.2")


def test_mqtt_allowance_is_per_user_name_with_a_wider_one_per_address() -> None:
    burst = 3
    auth = _Checks(failure_burst=burst, failure_refill=0.001)
    # One device failing forever spends its own allowance only.
    for _ in range(10):
        ticket = auth.reserve("10.0.0.3", "acme:broken")
        if ticket is not None:
            auth.settle(ticket, False, "mqtt")
    assert auth.failures["mqtt"] == burst
    assert auth.reserve("10.0.0.3", "acme:broken") is None
    good = auth.reserve("10.0.0.3", "acme:fine")
    assert good is not None and good.taken == 0.0  # a clean record takes nothing up front
    auth.settle(good, True, "mqtt")
    # A spray over many user names from one address stops at the address's allowance.
    names = iter(f"acme:guess-{i}" for i in range(1000))
    spent = burst
    while (ticket := auth.reserve("10.0.0.3", next(names))) is not None:
        auth.settle(ticket, False, "mqtt")
        spent += 1
    assert spent == burst * ADDRESS_SPREAD
    assert auth.reserve("10.0.0.3", "acme:fine") is None  # now the address is refused
    assert auth.reserve("10.0.0.4", "acme:fine") is not None  # but only that address


def test_a_success_gives_back_what_was_taken() -> None:
    auth = _Checks(failure_burst=3, failure_refill=0.001)
    first = auth.reserve("10.0.0.5", "acme:d")
    assert first is not None
    auth.settle(first, False, "mqtt")
    second = auth.reserve("10.0.0.5", "acme:d")  # a failure on record: one taken up front
    assert second is not None and second.taken == 1.0
    assert auth.mqtt_accounts.left("10.0.0.5\0acme:d") == pytest.approx(1.0, abs=0.01)
    auth.settle(second, True, "mqtt")
    assert auth.mqtt_accounts.left("10.0.0.5\0acme:d") == pytest.approx(2.0, abs=0.01)


async def test_a_refused_address_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    auth = _Checks(failure_burst=2, failure_refill=0.001)
    with caplog.at_level(logging.WARNING, logger="iotas.auth"):
        for _ in range(10):
            with pytest.raises((Unauthenticated, TooManyRequests)):
                await auth.authenticate("Bearer wrong", "10.0.0.6")
    warnings = [r for r in caplog.records if "too many failed" in r.getMessage()]
    assert len(warnings) == 1 and "10.0.0.6" in warnings[0].getMessage()
