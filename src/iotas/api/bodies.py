"""Reading request bodies and headers with errors a caller can act on, and the body each
route declares (`body(Model)`, models in `models.py`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, get_args, get_origin

import orjson
from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

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


# -- declared bodies ---------------------------------------------------------------------

Model = type[BaseModel]


@dataclass(frozen=True, slots=True)
class Declaration:
    """A route's body: its model, the media types it is sent as, whether it may be left out."""

    model: Model
    media_types: tuple[str, ...]
    required: bool


# Every body dependency and what it declares (openapi.py writes each as the route's
# requestBody; functions rather than callable objects, whose annotations FastAPI reads in
# their function's module).
DECLARED: dict[Callable[..., Any], Declaration] = {}


@cache
def _reader(model: Model, media_types: tuple[str, ...], required: bool) -> Callable[..., Any]:
    async def read(request: Request) -> Any:
        if not required and not await request.body():
            return None
        return check(model, await json_body(request))

    DECLARED[read] = Declaration(model, media_types, required)
    return read


def body(model: Model, *media_types: str, required: bool = True) -> Any:
    """The route's body, declared once: `data: Annotated[Any, body(TokenBody)]` reads the JSON
    (415, size limit and syntax as `json_body`), checks it against `model` (400 naming what is
    wrong) and gives the JSON exactly as sent (None for a body left out, when not `required`);
    the OpenAPI document shows `model` under `media_types` (JSON unless named)."""
    return Depends(_reader(model, media_types or ("application/json",), required))


def check(model: Model, data: Any) -> Any:
    """`data` if it fits `model`, else a 400 naming what is wrong."""
    try:
        model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise _invalid(model, exc) from None
    return data


def _invalid(model: Model, exc: ValidationError) -> InvalidInput:
    noun = getattr(model, "noun", "the body")
    errors = exc.errors(include_url=False)
    extra = [e["loc"] for e in errors if e["type"] == "extra_forbidden"]
    if extra:
        where = _path(extra[0][:-1])
        names = sorted({str(loc[-1]) for loc in extra if loc[:-1] == extra[0][:-1]})
        unknown = f"unknown member(s) {', '.join(names)} in {where or noun}"
        return InvalidInput(unknown, field=where) if where else InvalidInput(unknown)
    first = errors[0]
    where = _path(first["loc"])
    if not where:
        return InvalidInput(f"{noun} must be {getattr(model, 'shape', 'a JSON object')}")
    if first["type"] == "missing":
        return InvalidInput(f"{noun} needs {where}{_choices(model, first['loc'])}", field=where)
    return InvalidInput(f"{where}: {first['msg']}", field=where)


def _choices(model: Model, loc: tuple[int | str, ...]) -> str:
    """What a missing member of fixed values may be (`"password" or "x509"`)."""
    field = model.model_fields.get(str(loc[0])) if len(loc) == 1 else None
    allowed = (
        get_args(field.annotation) if field and get_origin(field.annotation) is Literal else ()
    )
    return f": {' or '.join(orjson.dumps(v).decode() for v in allowed)}" if allowed else ""


def _path(loc: tuple[int | str, ...]) -> str:
    """A member's path, without the names pydantic gives union members and root models."""
    return ".".join(str(p) for p in loc if not _root(p))


def _root(part: int | str) -> bool:
    return isinstance(part, str) and (part == "root" or "[" in part or part.startswith("dict"))
