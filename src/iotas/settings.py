"""Runtime settings, built once and passed explicitly (never read at import time)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8080


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
    log_level: str = "info"
    # An external MQTT broker iotas connects to as a client (mqtt://host:port, with
    # user:password@ if the broker wants them); None means no MQTT for now.
    mqtt_url: str | None = None
    # The embedded MQTT broker, when there is no mqtt_url: None runs none (the library
    # default; `iotas up` asks for 1883).
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int | None = None
    # iotas' own MQTT client id; nodes sharing a broker need different ones.
    mqtt_client_id: str = "iotas"
    # How long the broker keeps iotas' session (and queues its messages) while it is away.
    mqtt_session_expiry: int = 7 * 24 * 3600
    # Telemetry older than this is deleted; 0 keeps it forever.
    telemetry_retention_days: float = 30.0

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        """Defaults, then IOTAS_* environment variables, then explicit non-None overrides."""
        env = os.environ
        settings = cls()
        if "IOTAS_DATA_DIR" in env:
            settings = replace(settings, data_dir=Path(env["IOTAS_DATA_DIR"]))
        if env.get("IOTAS_DATABASE_URL"):
            settings = replace(settings, database_url=env["IOTAS_DATABASE_URL"])
        if env.get("IOTAS_ADMIN_TOKEN"):
            settings = replace(settings, admin_token=env["IOTAS_ADMIN_TOKEN"])
        if env.get("IOTAS_HOST"):
            settings = replace(settings, host=env["IOTAS_HOST"])
        if env.get("IOTAS_MQTT_URL"):
            settings = replace(settings, mqtt_url=env["IOTAS_MQTT_URL"])
        if env.get("IOTAS_MQTT_PORT"):
            settings = replace(settings, mqtt_port=int(env["IOTAS_MQTT_PORT"]))
        if env.get("IOTAS_MQTT_CLIENT_ID"):
            settings = replace(settings, mqtt_client_id=env["IOTAS_MQTT_CLIENT_ID"])
        if env.get("IOTAS_PORT"):
            settings = replace(settings, port=int(env["IOTAS_PORT"]))
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
