"""Telemetry ingest, queries and retention (being written in this session; see issue 3)."""

from __future__ import annotations

from iotas.store.store import Store


class TelemetryService:
    def __init__(self, store: Store) -> None:
        self.store = store
