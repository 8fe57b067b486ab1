"""The native MQTT convention (docs/mqtt.md): iotas as a client of an MQTT broker."""
