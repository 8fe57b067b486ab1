"""Reading request bodies and headers with errors a caller can act on."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from iotas.domain.errors import InvalidInput

MAX_BODY_BYTES = 1024 * 1024
JSON_TYPES = ("application/json", "application/merge-patch+json", "application/td+json")


async def json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if content_type and content_type not in JSON_TYPES and not content_type.endswith("+json"):
        raise InvalidInput(
            f"send JSON (Content-Type: application/json or application/merge-patch+json), "
            f"not {content_type[:80]}"
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
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


def version_header(value: str | None, name: str = "If-Match") -> int | None:
    """A twin version from `If-Match: 7`, `If-Match: "7"` or `W/"7"`."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f'{name} must be a twin version number such as "7", not {value[:40]!r}')
    return int(text)
