"""Telemetry routes (being written in this session; see issue 3)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/v1/things", tags=["telemetry"])
