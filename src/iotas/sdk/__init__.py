"""The operator SDK (asyncio): `Client` over the iotas REST API and event stream; and the
device SDK: `Device` on the iotas MQTT convention, and `provision` by claim."""

from iotas.sdk.client import Client, Page
from iotas.sdk.device import ActionError, Device
from iotas.sdk.errors import ApiError, ConnectionFailed
from iotas.sdk.provisioning import Provisioned, provision

__all__ = [
    "ActionError",
    "ApiError",
    "Client",
    "ConnectionFailed",
    "Device",
    "Page",
    "Provisioned",
    "provision",
]
