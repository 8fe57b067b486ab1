"""Code blocks of the docs, taken out of the markdown as a reader copies them, so that the
tests run what the docs say and not a copy that drifts (issue 12, item 15)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.M | re.S)


def section(doc: str, heading: str) -> str:
    """The text under `heading` (a `## ` line) up to the next heading of that level."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def code_blocks(doc: str, heading: str) -> list[str]:
    return FENCE.findall(section(doc, heading))
