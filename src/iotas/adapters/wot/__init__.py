"""Reaching Web of Things Things through the forms of their TDs: HTTP(S), CoAP, MQTT.

`WotClient` (client.py) is the facade; each protocol has its module (`http_forms`,
`coap_forms`, `mqtt_forms`), security schemes are applied by `security`, payloads are
encoded and decoded by `payloads`, and every failure is a `WotError` (errors.py)."""
