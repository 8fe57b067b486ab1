"""Fixtures of the WoT protocol client tests (defined in things_support.py)."""

from integration.wot_client.things_support import client, hostile, mosquitto

__all__ = ["client", "hostile", "mosquitto"]
