"""Adopted Web of Things Things: what iotas keeps to manage a Thing through its own API.

Adopting registers the Thing from its TD (the registry's `description`, one store with the
directory) and records a binding: where the TD came from, how often to poll, and the
credentials the TD's security schemes need, sealed by `SecretBox` and never journaled (the
journal records that credentials were set, not what they are). The network side (fetching
TDs, reading, writing, observing) is `adapters/wot`; this module does no I/O but the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iotas.domain import clock, td
from iotas.domain import journal as ev
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import check_thing_id, thing_id_for_uri
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import Thing
from iotas.services.changes import change, record
from iotas.services.context import Context
from iotas.services.directory import kind_of
from iotas.services.registry import Registry
from iotas.services.secret_box import SecretBox
from iotas.store import wot_repo
from iotas.store.store import Store, WriteTx
from iotas.store.wot_repo import Binding

DEFAULT_POLL_SECONDS = 30.0
MIN_POLL_SECONDS = 0.5
MAX_POLL_SECONDS = 86_400.0
# An adopted Thing not heard from for this many poll intervals shows `unreachable`.
SILENT_INTERVALS = 3
SECRET_FIELDS = ("username", "password", "token")


@dataclass(frozen=True, slots=True)
class Secrets:
    username: str | None = None
    password: str | None = None
    token: str | None = None

    def public(self) -> JSONObject:
        """What may be shown and journaled: which kinds of secret are set, not their values."""
        return {name: getattr(self, name) is not None for name in SECRET_FIELDS}


@dataclass(frozen=True, slots=True)
class Adopted:
    thing: Thing
    binding: Binding
    created: bool


def parse_secrets(value: object) -> Secrets | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= set(SECRET_FIELDS):
        raise InvalidInput(
            'credentials must be {"username": ..., "password": ...} (basic) or '
            '{"token": ...} (bearer)',
            field="credentials",
        )
    for name, item in value.items():
        if not isinstance(item, str) or not item or len(item) > 4096:
            raise InvalidInput(f"credentials.{name} must be a non-empty string", field=name)
    return Secrets(**value)


def check_poll(value: object) -> float:
    if value is None:
        return DEFAULT_POLL_SECONDS
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("poll_interval must be a number of seconds", field="poll_interval")
    if not MIN_POLL_SECONDS <= value <= MAX_POLL_SECONDS:
        raise InvalidInput(
            f"poll_interval must be between {MIN_POLL_SECONDS:g} and {MAX_POLL_SECONDS:g} s",
            field="poll_interval",
        )
    return float(value)


class WotBindings:
    def __init__(self, store: Store, registry: Registry, box: SecretBox) -> None:
        self.store = store
        self.registry = registry
        self.box = box

    async def adopt(
        self,
        ctx: Context,
        description: object,
        *,
        td_url: str | None,
        thing_id: str | None,
        poll_seconds: float,
        secrets: Secrets | None,
    ) -> Adopted:
        """Register (or re-register) a third-party Thing from its TD and bind it."""
        doc = td.validate_td(description)
        if not td.has_own_forms(doc):
            raise InvalidInput(
                "this TD has no forms: iotas could not reach the Thing through it", field="/"
            )
        if thing_id is None:
            name = doc.get("id") or td_url
            if not isinstance(name, str):
                raise InvalidInput("the TD has no id and came from no URL: give the Thing an id")
            thing_id = thing_id_for_uri(name)
        check_thing_id(thing_id)
        # Silent for three poll intervals: unreachable (an attribute, so people can change it).
        interval = {"expected_interval": poll_seconds * SILENT_INTERVALS}
        now = clock.now_us()
        sealed = None if secrets is None else self.box.seal(_plain(secrets))
        binding = Binding(thing_id, td_url, poll_seconds, sealed, now, now)
        bound: list[Binding] = []

        def bind(tx: WriteTx, before: Thing | None, thing: Thing) -> None:
            # In the transaction that writes the Thing: adopted whole or not at all. A Thing
            # created here has no binding yet (a binding goes with its Thing).
            previous = None if before is None else wot_repo.get(tx.conn, thing_id)
            stored = binding if previous is None else _keep_created(binding, previous)
            if secrets is not None:
                # That credentials were set, and of which kind, is journaled; never the values.
                patch = {"type": "wot", **secrets.public()}
                change(tx, ctx, thing, thing_id, ev.CREDENTIAL_ADDED, patch)
            wot_repo.upsert(tx.conn, stored, fresh=before is None)
            record(tx, ctx, ev.WOT_BINDING, thing_id, ev.WOT_ADOPTED, _journaled(stored))
            bound[:] = [stored]

        # The TD was validated above, as a TD with forms of its own: `registering` says so.
        thing, created = await self.registry.put_description(
            ctx, thing_id, doc, kind=kind_of(doc), attributes=interval, registering=bind
        )
        return Adopted(thing, bound[0], created)

    async def release(self, ctx: Context, thing_id: str) -> None:
        """Stop managing the Thing (it stays in the registry)."""

        def unit(tx: WriteTx) -> bool:
            removed = wot_repo.remove(tx.conn, thing_id)
            if removed:
                record(tx, ctx, ev.WOT_BINDING, thing_id, ev.WOT_RELEASED, {"thing_id": thing_id})
            return removed

        if not await self.store.write(unit):
            raise NotFound(f"the Thing {thing_id!r} is not adopted")

    async def get(self, thing_id: str) -> Binding:
        binding = await self.store.read(lambda conn: wot_repo.get(conn, thing_id))
        if binding is None:
            raise NotFound(f"the Thing {thing_id!r} is not adopted")
        return binding

    async def all(self) -> list[Binding]:
        return await self.store.read(wot_repo.all_bindings)

    def secrets_of(self, binding: Binding) -> Secrets | None:
        if binding.sealed_secrets is None:
            return None
        return Secrets(**self.box.open_sealed(binding.sealed_secrets))

    @staticmethod
    def describe(binding: Binding) -> dict[str, Any]:
        return {
            "thing_id": binding.thing_id,
            "td_url": binding.td_url,
            "poll_interval": binding.poll_seconds,
            "credentials": binding.sealed_secrets is not None,
            "created_at": clock.to_rfc3339(binding.created_us),
            "updated_at": clock.to_rfc3339(binding.updated_us),
        }


def _journaled(binding: Binding) -> JSONObject:
    """What the journal keeps of a binding: where its TD came from, how often it is polled,
    whether it has credentials (never them, nor their sealed form)."""
    return {
        "thing_id": binding.thing_id,
        "td_url": binding.td_url,
        "poll_interval": binding.poll_seconds,
        "credentials": binding.sealed_secrets is not None,
    }


def _plain(secrets: Secrets) -> dict[str, Any]:
    return {name: getattr(secrets, name) for name in SECRET_FIELDS if getattr(secrets, name)}


def _keep_created(binding: Binding, previous: Binding) -> Binding:
    return Binding(
        binding.thing_id,
        binding.td_url,
        binding.poll_seconds,
        binding.sealed_secrets if binding.sealed_secrets is not None else previous.sealed_secrets,
        previous.created_us,
        binding.updated_us,
    )
