"""Values to bytes and back, as a form's `contentType` says: JSON (and `+json` types) and text.
Values are not validated against the TD's data schemas here: real TDs carry schemas that no
value satisfies (wotpy's empty `oneOf: []`), and the Thing is the judge of its own input."""

from __future__ import annotations

from typing import Any

import orjson

from iotas.adapters.wot.errors import BadThingResponse

EXCERPT = 200


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(content_type: str | None) -> bool:
    kind = media_type(content_type)
    return kind == "application/json" or kind.endswith("+json")


def excerpt(body: bytes) -> str:
    return body[:EXCERPT].decode(errors="replace")


def encode(value: Any, content_type: str) -> bytes:
    """The body for `value`: JSON, except a string sent to a text form goes as it is."""
    if media_type(content_type).startswith("text/") and isinstance(value, str):
        return value.encode()
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise BadThingResponse(f"the value cannot be sent as JSON: {exc}") from None


def decode(body: bytes, expected: str, received: str | None, where: str) -> Any:
    """The value in `body`. The form's contentType (`expected`) decides, since a Thing's own
    Content-Type header is often generic; a body that is not what the form promised is refused,
    not passed on as a string."""
    if not body:
        return None
    if is_json(expected) or (not media_type(expected).startswith("text/") and is_json(received)):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            sent = media_type(received) or "no Content-Type"
            raise BadThingResponse(
                f"{where} should answer JSON but sent {sent}: {excerpt(body)!r}"
            ) from None
    if media_type(expected).startswith("text/"):
        return body.decode(errors="replace")
    raise BadThingResponse(
        f"{where} answers {media_type(expected) or 'an untyped body'}; iotas reads JSON and text"
    )
