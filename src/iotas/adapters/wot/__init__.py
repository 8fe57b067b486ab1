"""Reaching Web of Things Things through the forms of their TDs: HTTP(S), CoAP, MQTT."""
