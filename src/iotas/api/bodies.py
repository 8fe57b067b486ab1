"""Reading request bodies and headers with errors a caller can act on."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from iotas.domain.cursor import position
from iotas.domain.errors import InvalidInput, UnsupportedMediaType

MAX_BODY_BYTES = 1024 * 1024
JSON_TYPES = ("application/json", "application/merge-patch+json", "application/td+json")


async def json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"send JSON (Content-Type: application/json or application/merge-patch+json), "
            f"not {content_type[:80]}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise InvalidInput(f"the body is larger than {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:  # a chunked body that declared no length
            raise InvalidInput(f"the body is larger than {MAX_BODY_BYTES} bytes")
    if not body:
        raise InvalidInput("the request needs a JSON body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}") from None


def version_header(value: str | None, name: str = "If-Match") -> frozenset[int] | None:
    """The twin versions an `If-Match` accepts (RFC 9110 13.1.1): None when any current
    version will do (no header, or `*`), else the versions of a list of entity tags such
    as `"7"`, `"7", "8"` (also `7` and `W/"7"`, as iotas has always taken them). Each tag
    must be a version iotas could have issued; anything else is a 400."""
    if value is None:
        return None
    if value.strip() == "*":
        return None
    versions: set[int] = set()
    # Empty list elements are allowed and ignored (RFC 9110 5.6.1.2). A version holds no
    # comma, so splitting on commas cannot cut a tag iotas issued.
    for member in (m.strip() for m in value.split(",")):
        if not member:
            continue
        text = member[2:] if member.startswith("W/") else member
        if len(text) >= 2 and text[0] == text[-1] == '"':
            text = text[1:-1]
        version = position(text)
        if version is None:
            raise InvalidInput(
                f'{name} must be "*" or twin versions such as "7" or "7", "8", not {value[:40]!r}',
                field=name,
            )
        versions.add(version)
    if not versions:
        raise InvalidInput(f'{name} is empty: send "*" or twin versions such as "7"', field=name)
    return frozenset(versions)
