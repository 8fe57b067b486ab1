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
