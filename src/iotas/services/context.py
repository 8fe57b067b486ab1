"""Who is acting and why: carried into every journal event (like Home Assistant's Context)."""

from __future__ import annotations

from dataclasses import dataclass

from iotas.domain.errors import Forbidden, NotFound
from iotas.domain.ids import namespace_of


@dataclass(frozen=True, slots=True)
class Actor:
    subject: str
    role: str = "admin"
    # The namespaces a token is limited to; None is every namespace.
    namespaces: tuple[str, ...] | None = None

    def sees(self, thing_id: str) -> bool:
        return self.namespaces is None or namespace_of(thing_id) in self.namespaces

    def must_see(self, thing_id: str) -> None:
        """A Thing outside the token's namespaces does not exist for it: 404, exactly as for
        an id nobody uses, so a limited token cannot even learn which ids are taken."""
        if not self.sees(thing_id):
            raise NotFound(f"there is no Thing {thing_id!r}")

    def may_create(self, thing_id: str) -> None:
        if not self.sees(thing_id):
            raise Forbidden(
                f"this token is limited to namespace(s) {', '.join(self.namespaces or ())}: "
                f"it cannot create {thing_id!r}"
            )


@dataclass(frozen=True, slots=True)
class Context:
    actor: Actor
    cause: str | None = None
