"""The HTTP API: an ASGI app built by `create_app(settings)`."""
