"""The errors that domain rules and services raise.

    IotasError                 base; carries a title, a detail a person can act on, and a status
    ├── InvalidInput (400)     malformed id, body, patch, query, cursor, time
    ├── Unauthenticated (401)  no or unknown bearer token
    ├── Forbidden (403)        authenticated, but not allowed
    ├── NotFound (404)         no such Thing (or not at that instant)
    ├── Conflict (409)         the Thing exists already
    ├── PreconditionFailed (412)  If-Match version does not match
    ├── Locked (423)           the Thing is quarantined: it takes no commands
    ├── UnsupportedMediaType (415)  a body that is not JSON
    └── TooManyRequests (429)  too many failed authentications from an address, a Thing's
                               queue of invocations is full

The API maps each to an RFC 9457 problem document; nothing else reaches a caller as a 500
unless it is a bug.
"""

from __future__ import annotations

from typing import Any, ClassVar


class IotasError(Exception):
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    type_slug: ClassVar[str] = "internal"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(IotasError):
    status = 400
    title = "Invalid input"
    type_slug = "invalid-input"


class Unauthenticated(IotasError):
    status = 401
    title = "Authentication required"
    type_slug = "unauthenticated"


class Forbidden(IotasError):
    status = 403
    title = "Forbidden"
    type_slug = "forbidden"


class NotFound(IotasError):
    status = 404
    title = "Not found"
    type_slug = "not-found"


class Conflict(IotasError):
    status = 409
    title = "Conflict"
    type_slug = "conflict"


class PreconditionFailed(IotasError):
    status = 412
    title = "Precondition failed"
    type_slug = "precondition-failed"


class Locked(IotasError):
    status = 423
    title = "Locked"
    type_slug = "locked"


class TooManyRequests(IotasError):
    status = 429
    title = "Too many requests"
    type_slug = "too-many-requests"


class UnsupportedMediaType(IotasError):
    status = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"
