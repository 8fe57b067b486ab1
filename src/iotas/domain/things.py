"""A Thing's registry record and the rules for creating and patching it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from iotas.domain import clock, merge_patch
from iotas.domain.errors import Conflict, InvalidInput
from iotas.domain.ids import check_thing_id, namespace_of
from iotas.domain.merge_patch import JSONObject
from iotas.domain.twin import Twin

KIND_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LABEL_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
REL_RE = re.compile(r"^[a-z][a-z0-9-]{0,63}$")
MAX_LABEL_VALUE = 256
MAX_LINKS = 256
# Fields a PATCH of the Thing may touch; the id is fixed and the twin has its own routes.
PATCHABLE = ("kind", "attributes", "labels", "links", "description")


@dataclass(frozen=True, slots=True)
class Thing:
    id: str
    kind: str
    attributes: JSONObject = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    links: list[dict[str, str]] = field(default_factory=list)
    description: JSONObject | None = None
    revision: int = 0
    created_at: str = ""
    updated_at: str = ""
    twin: Twin = field(default_factory=Twin)
    # Presence: `connected` is journaled (connect and disconnect events); `last_seen` is
    # not (every message touches it), so a Thing read as of a past instant has none.
    connected: bool = False
    last_seen: str | None = None
    # While quarantined: {"since", "reason", "by", "snapshot"}; its desired state is frozen,
    # actions to it are refused and it has no working credential.
    quarantine: JSONObject | None = None

    @property
    def namespace(self) -> str:
        return namespace_of(self.id)

    def record(self) -> JSONObject:
        """The patchable part, as a JSON object: what creation and updates journal."""
        return {
            "kind": self.kind,
            "attributes": self.attributes,
            "labels": self.labels,
            "links": self.links,
            "description": self.description,
        }

    def with_record(self, record: JSONObject) -> Thing:
        return replace(
            self,
            kind=record["kind"],
            attributes=record.get("attributes") or {},
            labels=record.get("labels") or {},
            links=record.get("links") or [],
            description=record.get("description"),
        )

    def unreachable(self, now_us: int) -> bool:
        """Not connected and silent for longer than its `expected_interval` attribute (in
        seconds): how a Thing that only transmits, and so has no session, is known to be gone.
        A Thing never heard from (or read as of a past instant, which has no `last_seen`) is
        not judged."""
        interval = self.attributes.get("expected_interval")
        if (
            self.connected
            or self.last_seen is None
            or isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or interval <= 0
        ):
            return False
        return now_us - clock.parse_rfc3339(self.last_seen) > interval * 1_000_000

    def twin_dict(self, now_us: int | None = None) -> dict[str, Any]:
        """The twin as the API shows it: its status is `unreachable` while the Thing is."""
        doc = self.twin.to_dict()
        if self.unreachable(clock.now_us() if now_us is None else now_us):
            doc["status"] = "unreachable"
        return doc

    def to_dict(self, now_us: int | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"id": self.id, "namespace": self.namespace, **self.record()}
        doc["revision"] = self.revision
        doc["created_at"] = self.created_at
        doc["updated_at"] = self.updated_at
        doc["connected"] = self.connected
        doc["last_seen"] = self.last_seen
        doc["quarantine"] = self.quarantine
        doc["twin"] = self.twin_dict(now_us)
        return doc


def check_not_quarantined(thing: Thing, what: str) -> None:
    """Refuse `what` (changing desired state, invoking an action ...) on a quarantined Thing."""
    if thing.quarantine is not None:
        raise Conflict(
            f"{thing.id!r} is quarantined ({thing.quarantine.get('reason')}): "
            f"{what} is refused until it is released"
        )


def validate_record(record: JSONObject) -> JSONObject:
    """Check a full record (after defaults or a patch were applied) and return it normalised."""
    kind = record.get("kind")
    if not isinstance(kind, str) or not KIND_RE.match(kind):
        raise InvalidInput(
            "kind must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field="kind",
        )
    attributes = record.get("attributes")
    if attributes is None:
        attributes = {}
    if not isinstance(attributes, dict):
        raise InvalidInput("attributes must be a JSON object", field="attributes")
    _check_json(attributes, "attributes")
    # A null member cannot be written by a merge patch (null means remove), so it is not
    # kept at creation either: every state stays reachable by the events that record it.
    attributes = merge_patch.apply({}, attributes)
    labels = _labels(record.get("labels"))
    links = _links(record.get("links"))
    description = record.get("description")
    if description is not None:
        if not isinstance(description, dict):
            raise InvalidInput("description must be a JSON object (a Thing Description)")
        _check_json(description, "description")
        description = merge_patch.apply({}, description)
    return {
        "kind": kind,
        "attributes": attributes,
        "labels": labels,
        "links": links,
        "description": description,
    }


def validate_patch(patch: object) -> JSONObject:
    if not isinstance(patch, dict):
        raise InvalidInput("a Thing patch must be a JSON object (RFC 7396 merge patch)")
    unknown = sorted(set(patch) - set(PATCHABLE))
    if unknown:
        raise InvalidInput(
            f"cannot patch {', '.join(unknown)}: a Thing patch may change "
            f"{', '.join(PATCHABLE)} (the twin has its own routes)"
        )
    if "kind" in patch and patch["kind"] is None:
        raise InvalidInput("kind cannot be removed", field="kind")
    _check_json(patch, "patch")
    return patch


def _check_json(value: Any, where: str) -> None:
    try:
        merge_patch.check_json(value, where)
    except ValueError as exc:
        raise InvalidInput(str(exc), field=where) from None


def _labels(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput("labels must be an object of string values", field="labels")
    for key, item in value.items():
        if not LABEL_KEY_RE.match(key):
            raise InvalidInput(
                f"label key {key[:80]!r} must be 1-63 letters, digits, '.', '_', '/' or '-'",
                field="labels",
            )
        if not isinstance(item, str) or len(item) > MAX_LABEL_VALUE:
            raise InvalidInput(
                f"label {key!r} must be a string of at most {MAX_LABEL_VALUE} characters",
                field="labels",
            )
    return dict(value)


def _links(value: object) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidInput('links must be a list of {"rel": ..., "target": ...}', field="links")
    if len(value) > MAX_LINKS:
        raise InvalidInput(f"a Thing may have at most {MAX_LINKS} links", field="links")
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for i, link in enumerate(value):
        if not isinstance(link, dict) or set(link) != {"rel", "target"}:
            raise InvalidInput(
                f'links[{i}] must be {{"rel": ..., "target": ...}} and nothing else',
                field="links",
            )
        rel, target = link["rel"], link["target"]
        if not isinstance(rel, str) or not REL_RE.match(rel):
            raise InvalidInput(
                f"links[{i}].rel must be lowercase letters, digits and '-', like 'hosted-by'",
                field="links",
            )
        try:
            check_thing_id(target)
        except InvalidInput as exc:
            raise InvalidInput(f"links[{i}].target: {exc.detail}", field="links") from None
        if (rel, target) not in seen:
            seen.add((rel, target))
            out.append({"rel": rel, "target": target})
    return out
