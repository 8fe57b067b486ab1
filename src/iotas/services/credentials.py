"""Device credentials (being written in this session; see issue 3)."""

from __future__ import annotations

from iotas.store.store import Store


class CredentialService:
    def __init__(self, store: Store) -> None:
        self.store = store
