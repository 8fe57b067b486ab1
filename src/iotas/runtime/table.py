"""The adapters a node runs, in start order (stopped in reverse). Adding an adapter is its
folder under `iotas/adapters/` with a `setup(services, controllers)`, and one line here."""

from __future__ import annotations

from iotas.adapters import base
from iotas.adapters.mqtt import devices as mqtt
from iotas.adapters.wot import things as wot

ADAPTERS: tuple[tuple[str, base.Setup], ...] = (
    ("mqtt", mqtt.setup),
    ("wot", wot.setup),
)
