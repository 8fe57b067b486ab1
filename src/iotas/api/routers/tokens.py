"""Operators' API tokens (admin): create (the token is in the answer only), list, revoke."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from iotas.api.bodies import json_body
from iotas.api.responses import json_response
from iotas.api.security import Ctx, Rt

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])

NO_STORE = {"Cache-Control": "no-store"}
_TOKEN_BODY = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["subject", "role"],
                "properties": {
                    "subject": {"type": "string", "example": "ci-bot"},
                    "role": {"type": "string", "enum": ["viewer", "operator", "admin"]},
                    "expires": {"type": "string", "format": "date-time"},
                },
            }
        }
    },
    "required": True,
}


@router.post("", status_code=201, openapi_extra={"requestBody": _TOKEN_BODY})
async def create_token(request: Request, ctx: Ctx, rt: Rt) -> Response:
    created = await rt.tokens.create(ctx, await json_body(request))
    return json_response(created, 201, headers=NO_STORE)


@router.get("")
async def list_tokens(ctx: Ctx, rt: Rt) -> Response:
    return json_response({"items": await rt.tokens.list(), "next": None})


@router.delete("/{token_id}", status_code=204)
async def revoke_token(token_id: str, ctx: Ctx, rt: Rt) -> Response:
    await rt.tokens.revoke(ctx, token_id)
    return Response(status_code=204)
