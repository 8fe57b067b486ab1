"""Turning httpx responses and failures into SDK results and errors (shared by the client
and the event stream)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from iotas.sdk.errors import ApiError, ConnectionFailed

PROBLEM_TYPES = ("application/problem+json", "application/json")


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error response (the body must have been read)."""
    media_type = response.headers.get("content-type", "").partition(";")[0].strip()
    if media_type in PROBLEM_TYPES or media_type.endswith("+json"):
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict):
            body.setdefault("status", response.status_code)
            body.setdefault("title", response.reason_phrase or "Error")
            if "detail" not in body and isinstance(body.get("message"), str):
                body["detail"] = body["message"]
            return body
    text = response.text.strip()
    return {
        "type": "about:blank",
        "title": response.reason_phrase or "Error",
        "status": response.status_code,
        "detail": text[:500] or None,
    }


def error_of(response: httpx.Response) -> ApiError:
    return ApiError(response.status_code, problem_of(response))


def connection_failed(url: str, exc: httpx.TransportError) -> ConnectionFailed:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        reason = f"timed out ({reason})"
    return ConnectionFailed(url, reason)


def json_body(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        raise ApiError(
            response.status_code,
            {
                "type": "about:blank",
                "title": "Invalid response",
                "status": response.status_code,
                "detail": f"the server sent a body that is not JSON: {exc}",
            },
        ) from None


def time_param(value: datetime | str | None, name: str) -> str | None:
    """An RFC 3339 UTC string for a query parameter; strings are passed through as given."""
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (or an RFC 3339 string)")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def cause_header(cause: str | None) -> dict[str, str]:
    if cause is None:
        return {}
    if not cause.isprintable():
        raise ValueError("a cause must be printable text (no control characters)")
    # Header values are bytes; the server decodes percent-encoded UTF-8.
    return {"X-Iotas-Cause": quote(cause, safe=" !\"#$&'()*+,-./:;<=>?@[]^_`{|}~")}
