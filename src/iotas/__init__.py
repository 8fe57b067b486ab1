"""iotas: an open control plane for the Internet of Things."""

__version__ = "0.1.0"
