"""Runtime settings, built once and passed explicitly (never read at import time)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_PORT = 8080
# `Settings.durability`: what an acknowledged write survives (docs/deployment.md).
DURABILITIES = ("normal", "full")


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path = field(default_factory=lambda: Path("iotas-data"))
    # None means the embedded SQLite file `<data_dir>/iotas.db`.
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # When set, this is the admin token (for automation); otherwise the first start makes one.
    admin_token: str | None = None
    # How long a validated token is trusted before it is looked up again (revocation delay).
    token_cache_seconds: float = 5.0
    # Failed authentications one source (IP address) may make in a burst, and per second
    # after it; beyond that it is answered 429 without its tokens being looked at.
    auth_failure_burst: float = 20.0
    auth_failure_rate: float = 1.0
    log_level: str = "info"
    # An external MQTT broker iotas connects to as a client (mqtt://host:port, with
    # user:password@ if the broker wants them); None means no MQTT for now.
    mqtt_url: str | None = None
    # The embedded MQTT broker, when there is no mqtt_url: None runs none (the library
    # default; `iotas up` asks for 1883).
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int | None = None
    # The embedded broker's MQTT-over-TLS listener, where devices log in with their client
    # certificates (None: none).
    mqtts_port: int | None = None
    # iotas' own MQTT client id; nodes sharing a broker need different ones.
    mqtt_client_id: str = "iotas"
    # How long the broker keeps iotas' session (and queues its messages) while it is away.
    mqtt_session_expiry: int = 7 * 24 * 3600
    # Telemetry older than this is deleted; 0 keeps it forever.
    telemetry_retention_days: float = 30.0
    # How often, in seconds, the server deletes telemetry older than that.
    telemetry_retention_interval: float = 60.0
    # A device message larger than this is refused (counted as too_large), not parsed.
    mqtt_max_payload: int = 256 * 1024
    # On the embedded broker a device may send this many messages per second, in bursts of up
    # to `mqtt_device_burst`; beyond that its QoS 0 messages are refused (`rate_limited`) and
    # its QoS 1 and 2 messages wait their turn (`throttled`). 0 sets no limit.
    mqtt_device_rate: float = 100.0
    mqtt_device_burst: float = 500.0
    # The key that encrypts secrets iotas sends on (adopted Things' credentials); None keeps
    # one in `<data_dir>/secret-key`. Nodes of a cluster must share it.
    secret_key: str | None = None
    # An operator's own CA (PEM files); None: iotas' CA in `<data_dir>/ca/`, made on first start.
    ca_cert_file: Path | None = None
    ca_key_file: Path | None = None
    # How long device certificates iotas signs are valid, in days.
    certificate_days: int = 365
    # Serve the API over HTTPS (a server certificate from the CA), where devices may
    # authenticate with their client certificates instead of a token.
    tls: bool = False
    # How long a certificate stays valid after the device renewed it: time to switch over.
    certificate_grace_seconds: int = 7 * 24 * 3600
    # How long one exchange with a Web of Things Thing may take, in seconds.
    wot_timeout: float = 5.0
    # How many exchanges with WoT Things may run at once (a bulk change of 10,000 Things).
    wot_concurrency: int = 200
    # The URL clients reach the API at (https://iotas.example.com), for the hrefs of served
    # TDs; None: the address the server listens on. Never the request's Host header.
    public_url: str | None = None
    # Reverse proxies (addresses or networks, or "*") whose X-Forwarded-For, -Proto and
    # -Host are believed; from anyone else those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # What an acknowledged write survives on SQLite: "normal" (WAL, synchronous=NORMAL) a
    # crash of iotas, not a power cut or a crash of the machine; "full" (synchronous=FULL)
    # those too, for a sync of the WAL in every commit. PostgreSQL keeps its own settings
    # (fsync and synchronous_commit on by default: acknowledged means on disk).
    durability: str = "normal"

    def __post_init__(self) -> None:
        if self.public_url is not None:
            check_public_url(self.public_url)
        for proxy in self.trusted_proxies:
            check_proxy(proxy)
        if self.durability not in DURABILITIES:
            raise ValueError(
                f"durability must be one of {', '.join(DURABILITIES)}, not {self.durability!r}"
            )

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then IOTAS_* environment variables, then explicit non-None overrides."""
        env = os.environ
        settings = cls()
        for name, (field_name, convert) in _ENV.items():
            if env.get(name):
                settings = replace(settings, **{field_name: convert(env[name])})
        given = {k: v for k, v in overrides.items() if v is not None}
        if "data_dir" in given:
            given["data_dir"] = Path(given["data_dir"])
        return replace(settings, **given)

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "iotas.db"

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin-token"


def check_public_url(url: str) -> str:
    """An http(s) URL with a host and no user, query or fragment; else ValueError."""
    parts = urlsplit(url)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(f"the public URL must be http(s)://host[:port][/path], not {url[:200]!r}")
    try:
        parts.port  # noqa: B018 (a bad port raises here)
    except ValueError:
        raise ValueError(f"the public URL has an invalid port: {url[:200]!r}") from None
    return url


def check_proxy(proxy: str) -> str:
    """A trusted proxy: an IP address, a network (10.0.0.0/8) or "*"; else ValueError."""
    if proxy == "*":
        return proxy
    try:
        if "/" in proxy:
            ipaddress.ip_network(proxy, strict=False)
        else:
            ipaddress.ip_address(proxy)
    except ValueError:
        raise ValueError(
            f"a trusted proxy is an IP address, a network (10.0.0.0/8) or '*', not {proxy!r}"
        ) from None
    return proxy


def proxies(value: str) -> tuple[str, ...]:
    """`10.0.0.1, 192.168.0.0/16` -> ("10.0.0.1", "192.168.0.0/16")."""
    return tuple(p.strip() for p in value.split(",") if p.strip())


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


# Environment variables read by `Settings.from_env`: the field each sets and how it is parsed.
_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "IOTAS_DATA_DIR": ("data_dir", Path),
    "IOTAS_DATABASE_URL": ("database_url", str),
    "IOTAS_ADMIN_TOKEN": ("admin_token", str),
    "IOTAS_AUTH_FAILURE_BURST": ("auth_failure_burst", float),
    "IOTAS_AUTH_FAILURE_RATE": ("auth_failure_rate", float),
    "IOTAS_HOST": ("host", str),
    "IOTAS_PORT": ("port", int),
    "IOTAS_MQTT_URL": ("mqtt_url", str),
    "IOTAS_MQTT_PORT": ("mqtt_port", int),
    "IOTAS_MQTTS_PORT": ("mqtts_port", int),
    "IOTAS_MQTT_CLIENT_ID": ("mqtt_client_id", str),
    "IOTAS_MQTT_MAX_PAYLOAD": ("mqtt_max_payload", int),
    "IOTAS_MQTT_DEVICE_RATE": ("mqtt_device_rate", float),
    "IOTAS_MQTT_DEVICE_BURST": ("mqtt_device_burst", float),
    "IOTAS_TELEMETRY_RETENTION_DAYS": ("telemetry_retention_days", float),
    "IOTAS_SECRET_KEY": ("secret_key", str),
    "IOTAS_CA_CERT": ("ca_cert_file", Path),
    "IOTAS_CA_KEY": ("ca_key_file", Path),
    "IOTAS_CERTIFICATE_DAYS": ("certificate_days", int),
    "IOTAS_TLS": ("tls", _flag),
    "IOTAS_CERTIFICATE_GRACE": ("certificate_grace_seconds", int),
    "IOTAS_WOT_TIMEOUT": ("wot_timeout", float),
    "IOTAS_PUBLIC_URL": ("public_url", str),
    "IOTAS_TRUSTED_PROXIES": ("trusted_proxies", proxies),
    "IOTAS_DURABILITY": ("durability", str.lower),
}
