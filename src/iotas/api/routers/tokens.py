"""Operators' API tokens (admin): create (the token is in the answer only), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from starlette.responses import Response

from iotas.api.bodies import body
from iotas.api.models import TokenBody
from iotas.api.responses import json_response
from iotas.api.security import Permission, Rt, requires
from iotas.services.context import Context

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])

NO_STORE = {"Cache-Control": "no-store"}
# Tokens speak of every namespace: admin only, and never to a namespace-limited token.
Admin = Annotated[Context, requires(Permission.ADMIN, installation=True)]


@router.post("", status_code=201)
async def create_token(ctx: Admin, rt: Rt, data: Annotated[Any, body(TokenBody)]) -> Response:
    created = await rt.tokens.create(ctx, data)
    return json_response(created, 201, headers=NO_STORE)


@router.get("")
async def list_tokens(ctx: Admin, rt: Rt) -> Response:
    return json_response({"items": await rt.tokens.list(), "next": None})


@router.delete("/{token_id}", status_code=204)
async def revoke_token(token_id: str, ctx: Admin, rt: Rt) -> Response:
    await rt.tokens.revoke(ctx, token_id)
    return Response(status_code=204)
