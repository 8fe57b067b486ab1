"""Secrets and their `$7$` hashes, checked against what Mosquitto's own tool writes."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from iotas.domain.secrets import (
    ITERATIONS,
    MAX_ITERATIONS,
    MAX_SECRET_LENGTH,
    PasswordHash,
    hash_secret,
    new_secret,
    verify_secret,
)

# Written by `mosquitto_passwd -b` (Mosquitto 2.0.11): its default 101 iterations, and -I 1000.
MOSQUITTO_FILE = (
    "pump-17:$7$101$Z4xU5ESM/Dg5fBjR$DLh6EAlL/RgkVVT8vVgeuRNzwm3cniQpHPW56HeEmxJ009B+a3Z+6n6Y"
    "fD2UxJSkl897mH4ugleRU+fs5P7cuQ==\n"
    "gw-1:$7$1000$4QlQrBFPUuQ83WZr$ALebGRYKW1+h4ibpmXVLxmX5pv6KUt3sho0+snsmqR2PcjJWCo84i3nhNLa"
    "yWcQDlnWv1YsN4Sv/RTEpkJH0Hg==\n"
)
MOSQUITTO_SECRETS = {"pump-17": "correct horse battery staple", "gw-1": "Zx9_-secret"}


def _entries(text: str) -> dict[str, str]:
    return dict(line.split(":", 1) for line in text.splitlines() if line)


def test_verifies_what_mosquitto_passwd_wrote() -> None:
    for user, hashed in _entries(MOSQUITTO_FILE).items():
        assert verify_secret(MOSQUITTO_SECRETS[user], hashed)
        assert not verify_secret(MOSQUITTO_SECRETS[user] + "x", hashed)
        assert PasswordHash.parse(hashed).format() == hashed


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_verifies_a_file_mosquitto_passwd_writes_now(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    secret = new_secret()
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), "device", secret], check=True, timeout=10
    )
    hashed = _entries(path.read_text())["device"]
    assert verify_secret(secret, hashed)
    assert not verify_secret(new_secret(), hashed)


def test_hash_has_mosquittos_shape_and_verifies() -> None:
    secret = new_secret()
    hashed = hash_secret(secret)
    prefix, tag, iterations, salt, key = hashed.split("$")
    assert (prefix, tag, int(iterations)) == ("", "7", ITERATIONS)
    assert len(base64.b64decode(salt)) == 12 and len(salt) == 16
    assert len(base64.b64decode(key)) == 64 and len(key) == 88
    assert verify_secret(secret, hashed)
    assert not verify_secret(secret[:-1], hashed)
    assert not verify_secret("", hashed)
    # A fresh salt each time: equal secrets do not give equal hashes.
    assert hash_secret(secret) != hashed


def test_iterations_and_salt_are_honoured() -> None:
    salt = bytes(range(12))
    a = hash_secret("s", iterations=5, salt=salt)
    assert a == hash_secret("s", iterations=5, salt=salt)
    assert a.startswith("$7$5$" + base64.b64encode(salt).decode() + "$")
    assert a != hash_secret("s", iterations=6, salt=salt)
    assert verify_secret("s", a) and verify_secret("s", PasswordHash.parse(a))
    with pytest.raises(ValueError):
        hash_secret("s", iterations=0)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "secret",
        "$6$abc$def",
        "$7$x$AAAA$" + "A" * 88,
        f"$7${MAX_ITERATIONS + 1}$AAAAAAAAAAAAAAAA$" + base64.b64encode(bytes(64)).decode(),
        "$7$0$AAAAAAAAAAAAAAAA$" + base64.b64encode(bytes(64)).decode(),
        "$7$10$not base64!$" + base64.b64encode(bytes(64)).decode(),
        "$7$10$$" + base64.b64encode(bytes(64)).decode(),
        "$7$10$AAAAAAAAAAAAAAAA$" + base64.b64encode(bytes(32)).decode(),
        "$7$10$AAAAAAAAAAAAAAAA$" + base64.b64encode(bytes(64)).decode() + "$",
    ],
)
def test_malformed_hashes_are_errors_not_wrong_passwords(bad: str) -> None:
    with pytest.raises(ValueError):
        verify_secret("secret", bad)


def test_over_long_secrets_are_refused_without_hashing() -> None:
    hashed = hash_secret("x" * (MAX_SECRET_LENGTH + 1), iterations=1)
    assert not verify_secret("x" * (MAX_SECRET_LENGTH + 1), hashed)


def test_new_secrets_are_long_random_and_url_safe() -> None:
    made = {new_secret() for _ in range(200)}
    assert len(made) == 200
    for secret in made:
        assert len(secret) == 43  # 32 random bytes
        assert set(secret) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        )
