"""Failed API authentications are counted by reason and, beyond a burst, refused per source
with 429 before any token is looked at; other sources are not affected."""

from __future__ import annotations

import pytest

from iotas.api.runtime import Runtime
from iotas.domain.errors import TooManyRequests, Unauthenticated
from iotas.services.auth import Authenticator


async def test_failures_are_counted_and_limited_per_source(rt: Runtime) -> None:
    auth = Authenticator(rt.store, failure_burst=3, failure_refill=0.5)
    for header in (None, "Basic x", "Bearer nope"):
        with pytest.raises(Unauthenticated):
            await auth.authenticate(header, "192.0.2.1")
    assert auth.failures == {"missing": 1, "malformed": 1, "unknown": 1}
    with pytest.raises(TooManyRequests) as limited:
        await auth.authenticate("Bearer nope", "192.0.2.1")
    assert limited.value.extra["retry_after"] >= 1
    assert auth.failures["rate_limited"] == 1
    # Another source is judged on its own.
    with pytest.raises(Unauthenticated):
        await auth.authenticate("Bearer nope", "192.0.2.2")
    # A good token from the limited source waits too: nothing is looked up for it.
    with pytest.raises(TooManyRequests):
        await auth.authenticate(f"Bearer {rt.settings.admin_token}", "192.0.2.1")
