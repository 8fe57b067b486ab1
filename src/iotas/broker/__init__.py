"""The embedded MQTT broker (amqtt) and its authentication against iotas credentials."""
