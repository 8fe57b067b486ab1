"""The operator SDK (asyncio): `Client` over the iotas REST API and event stream."""

from iotas.sdk.client import Client, Page
from iotas.sdk.errors import ApiError, ConnectionFailed

__all__ = ["ApiError", "Client", "ConnectionFailed", "Page"]
