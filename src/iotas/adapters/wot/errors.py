"""What can go wrong talking to a Thing, in words an operator can act on."""

from __future__ import annotations


class WotError(Exception):
    """Any failure to complete an exchange with a Thing."""


class ThingUnreachable(WotError):
    """No answer: connection refused, name unknown, or no response within the deadline."""


class ThingRefused(WotError):
    """The Thing answered with an error status."""

    def __init__(self, message: str, *, status: int | str, excerpt: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.excerpt = excerpt


class BadThingResponse(WotError):
    """An answer iotas will not take: not the promised JSON, too large, redirected away."""


class NoUsableForm(WotError):
    """The TD offers no form iotas can use for the operation (or credentials are missing)."""
