"""Who is acting and why: carried into every journal event (like Home Assistant's Context)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    subject: str
    role: str = "admin"
    namespaces: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Context:
    actor: Actor
    cause: str | None = None
