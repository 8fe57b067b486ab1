"""What a node runs, and in which order: the services over one store, the adapters of the
table (`table.py`), and the controllers (`iotas.controllers`), some of them once per cluster.
The API's lifespan, the demo and tests enter `running(settings)`; nothing starts on import."""

from iotas.runtime.node import Runtime, open_runtime, running

__all__ = ["Runtime", "open_runtime", "running"]
