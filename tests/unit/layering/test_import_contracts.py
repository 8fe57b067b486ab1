"""The layering contracts in .importlinter (run by `make lint`) hold, and they can fail: a
copy of the package with one import that runs outward is refused by each contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(src: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(ROOT / ".importlinter")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = _lint(ROOT / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        ("domain/ids.py", "import iotas.store.store", "domain imports no other layer"),
        ("store/snapshots_repo.py", "import iotas.services.registry", "store never imports"),
        ("services/stats.py", "import iotas.api.app", "services never import"),
        ("sdk/errors.py", "import iotas.services.registry", "sdk and sim use only the public API"),
        ("adapters/wot/worker.py", "import iotas.runtime", "only the edges"),
        ("adapters/mqtt/devices.py", "import iotas.api.app", "adapters and the broker never"),
        ("api/routers/health.py", "import iotas.runtime.table", "api uses the runtime through"),
    ],
)
def test_an_outward_import_breaks_its_contract(
    tmp_path: Path, module: str, wrong_import: str, contract: str
) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "iotas", src / "iotas", ignore=shutil.ignore_patterns("*.pyc"))
    target = src / "iotas" / module
    target.write_text(target.read_text() + f"\n{wrong_import}  # noqa\n")
    result = _lint(src, tmp_path)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if "BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout
