"""JSON and problem+json responses, serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from iotas.domain.errors import IotasError


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content), status_code=status, media_type="application/json", headers=headers
    )


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    instance: str | None = None,
    extra: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://iotas.dev/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if extra:
        body.update(extra)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def from_error(error: IotasError, instance: str | None = None) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="iotas"'} if error.status == 401 else None
    if error.status == 429 and "retry_after" in error.extra:
        headers = {"Retry-After": str(error.extra["retry_after"])}
    return problem(
        error.status,
        error.title,
        error.detail,
        slug=error.type_slug,
        instance=instance,
        extra=error.extra,
        headers=headers,
    )
