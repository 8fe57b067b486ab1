"""What can go wrong talking to a Thing, in words an operator can act on.

WotError
├── ThingUnreachable   no answer: refused, unknown name, no response within the deadline
├── ThingRefused       the Thing answered with an error status (status, excerpt)
├── BadThingResponse   an answer iotas will not take: not the promised JSON, too large,
│                      redirected to another origin or too often
└── NoUsableForm       the TD offers no form (or security scheme) iotas can use, or the
                       credentials it asks for are missing
"""

from __future__ import annotations


class WotError(Exception):
    """Any failure to complete an exchange with a Thing."""


class ThingUnreachable(WotError):
    """No answer: connection refused, name unknown, or no response within the deadline."""


class ThingRefused(WotError):
    """The Thing answered with an error status: `status` (an HTTP code, or a CoAP code such as
    "4.04") and the first bytes of its answer in `excerpt`."""

    def __init__(self, message: str, *, status: int | str, excerpt: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.excerpt = excerpt


class BadThingResponse(WotError):
    """An answer iotas will not take: not the promised JSON, too large, redirected away."""


class NoUsableForm(WotError):
    """The TD offers no form iotas can use for the operation (or credentials are missing)."""
