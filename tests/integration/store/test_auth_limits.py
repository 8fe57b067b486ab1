"""Failed API authentications are counted by reason and, beyond a burst, answered 429 per
source; other sources are not affected, and a valid token never is (decision 48)."""

from __future__ import annotations

import pytest

from iotas.domain.errors import TooManyRequests, Unauthenticated
from iotas.runtime import Runtime
from iotas.services.auth import Authenticator
from iotas.services.context import Actor, Context

ADMIN_CTX = Context(Actor("admin"))


async def test_failures_are_counted_and_limited_per_source(rt: Runtime) -> None:
    auth = Authenticator(rt.store, failure_burst=3, failure_refill=0.5)
    # No credential at all is counted but never charged: nothing was tried.
    for header in (None, "Basic x") * 5 + ("Bearer nope",) * 3:
        with pytest.raises(Unauthenticated):  # (a 429 is not one)
            await auth.authenticate(header, "192.0.2.1")
    assert auth.failures == {"missing": 5, "malformed": 5, "unknown": 3}
    with pytest.raises(TooManyRequests) as limited:
        await auth.authenticate("Bearer nope", "192.0.2.1")
    assert limited.value.extra["retry_after"] >= 1
    assert auth.failures["rate_limited"] == 1
    # Another source is judged on its own.
    with pytest.raises(Unauthenticated):
        await auth.authenticate("Bearer nope", "192.0.2.2")
    # A valid token from the limited source is looked up and let in: tokens cannot be
    # guessed, and a proxy's users share its address.
    made = await rt.tokens.create(ADMIN_CTX, {"subject": "behind-the-proxy", "role": "viewer"})
    actor = await auth.authenticate(f"Bearer {made['token']}", "192.0.2.1")
    assert actor.subject == "behind-the-proxy"


async def test_failures_at_once_each_cost_one(rt: Runtime) -> None:
    """Wrong tokens sent at once, each looked up while the others wait: every failure is
    charged, so the source is refused afterwards (a stale read would charge them as one)."""
    import asyncio

    auth = Authenticator(rt.store, failure_burst=5, failure_refill=0.01)
    results = await asyncio.gather(
        *(auth.authenticate(f"Bearer wrong-{i}", "192.0.2.9") for i in range(5)),
        return_exceptions=True,
    )
    assert all(isinstance(r, Unauthenticated) for r in results)
    with pytest.raises(TooManyRequests):
        await auth.authenticate("Bearer wrong-again", "192.0.2.9")
    # A good token used many times at once from one address (a proxy) is not refused.
    made = await rt.tokens.create(ADMIN_CTX, {"subject": "proxy-user", "role": "viewer"})
    good = f"Bearer {made['token']}"
    fresh = Authenticator(rt.store, failure_burst=2, failure_refill=0.01)
    await asyncio.gather(*(fresh.authenticate(good, "192.0.2.10") for _ in range(10)))
