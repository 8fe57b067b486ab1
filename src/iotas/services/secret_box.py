"""Secrets iotas must be able to send on (a third-party Thing's password or token), encrypted
at rest.

Device and operator secrets are only ever checked, so they are stored as hashes; these must be
presented to someone else, so they are encrypted instead (Fernet: AES-128-CBC with an
HMAC-SHA256, from `cryptography`). The key is `IOTAS_SECRET_KEY` when set (every node of a
cluster needs the same one) or `<data-dir>/secret-key`, made on first use with mode 0600. The
journal never sees these values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "secret-key"


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def open(cls, data_dir: Path, configured: str | None = None) -> SecretBox:
        if configured:
            return cls(configured.encode())
        path = data_dir / KEY_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                pass
            else:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(key + b"\n")
        return cls(path.read_bytes().strip())

    def seal(self, value: dict[str, Any]) -> str:
        return self._fernet.encrypt(orjson.dumps(value)).decode()

    def open_sealed(self, token: str) -> dict[str, Any]:
        try:
            value: dict[str, Any] = orjson.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, orjson.JSONDecodeError):
            raise ValueError(
                "a stored secret cannot be decrypted: the secret key changed "
                "(IOTAS_SECRET_KEY or <data-dir>/secret-key); set the Thing's credentials again"
            ) from None
        return value
