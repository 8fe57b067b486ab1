"""One change path: a Thing's journaled state is written by `WriteTx.change` alone, so no
code can change a Thing without its event or leave the store's cache behind (decision 53)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[3] / "src" / "iotas"
WRITERS = frozenset({"insert_thing", "update_thing", "delete_thing"})
CHANGE_PATH = SRC / "store" / "store.py"


def _calls_to_writers(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{path.relative_to(SRC)}:{node.lineno} {node.func.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in WRITERS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "things_repo"
    ]


def test_only_the_change_path_writes_things() -> None:
    outside = [
        call
        for path in sorted(SRC.rglob("*.py"))
        if path != CHANGE_PATH
        for call in _calls_to_writers(path)
    ]
    assert outside == []
    assert len(_calls_to_writers(CHANGE_PATH)) == len(WRITERS)
