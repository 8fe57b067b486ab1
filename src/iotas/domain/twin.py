"""The twin: desired and reported documents, per-key metadata, the delta and the status.

Metadata is kept per leaf, keyed by JSON Pointer (RFC 6901): `{"/setpoint": {"version": 3,
"ts": "...", "source": "alice"}}`. A leaf is any value that is not a non-empty object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from iotas.domain import merge_patch
from iotas.domain.merge_patch import JSONObject

Side = Literal["desired", "reported"]
KeyMeta = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Twin:
    desired: JSONObject = field(default_factory=dict)
    reported: JSONObject = field(default_factory=dict)
    desired_meta: dict[str, KeyMeta] = field(default_factory=dict)
    reported_meta: dict[str, KeyMeta] = field(default_factory=dict)
    version: int = 0
    pending_since: str | None = None
    # Set when the Thing moved away from a desired state it had reached (a reported change
    # made an empty delta non-empty): it changed outside iotas. Cleared by a desired change
    # (a new target) or when reported catches up again.
    drifted_since: str | None = None

    @property
    def delta(self) -> JSONObject:
        return delta(self.desired, self.reported)

    @property
    def status(self) -> str:
        if self.pending_since is None:
            return "in_sync"
        return "pending" if self.drifted_since is None else "drifted"

    def patched(self, side: Side, patch: JSONObject, *, ts: str, source: str) -> Twin:
        """Apply an effective merge patch to one side (the event fold calls this)."""
        version = self.version + 1
        document = self.desired if side == "desired" else self.reported
        meta = dict(self.desired_meta if side == "desired" else self.reported_meta)
        _update_meta(meta, document, patch, "", {"version": version, "ts": ts, "source": source})
        new_document = merge_patch.apply(document, patch)
        # Built once, not by `replace` twice: this runs for every change.
        if side == "desired":
            desired, reported = new_document, self.reported
            desired_meta, reported_meta = meta, self.reported_meta
        else:
            desired, reported = self.desired, new_document
            desired_meta, reported_meta = self.desired_meta, meta
        in_sync = not delta(desired, reported)
        pending_since = None if in_sync else (self.pending_since or ts)
        if in_sync or side == "desired":
            drifted_since = None
        elif self.pending_since is None:
            drifted_since = ts  # was in sync, and the Thing itself changed
        else:
            drifted_since = self.drifted_since
        return Twin(
            desired, reported, desired_meta, reported_meta, version, pending_since, drifted_since
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "desired": self.desired,
            "reported": self.reported,
            "delta": self.delta,
            "version": self.version,
            "status": self.status,
            "pending_since": self.pending_since,
            "drifted_since": self.drifted_since,
            "metadata": {"desired": self.desired_meta, "reported": self.reported_meta},
        }


def delta(desired: JSONObject, reported: JSONObject) -> JSONObject:
    """Desired keys whose value differs from reported, nested like desired."""
    out: JSONObject = {}
    for key, want in desired.items():
        if key not in reported:
            out[key] = want
            continue
        have = reported[key]
        if isinstance(want, dict) and isinstance(have, dict) and want:
            sub = delta(want, have)
            if sub:
                out[key] = sub
        elif not merge_patch.same(want, have):
            out[key] = want
    return out


def pointer(prefix: str, key: str) -> str:
    return f"{prefix}/{key.replace('~', '~0').replace('/', '~1')}"


def _drop(meta: dict[str, KeyMeta], path: str) -> None:
    below = path + "/"
    for key in [k for k in meta if k == path or k.startswith(below)]:
        del meta[key]


def _update_meta(
    meta: dict[str, KeyMeta], before: Any, patch: JSONObject, prefix: str, stamp: KeyMeta
) -> None:
    for key, value in patch.items():
        path = pointer(prefix, key)
        current = before.get(key) if isinstance(before, dict) else None
        if isinstance(value, dict) and value:
            if not isinstance(current, dict):
                _drop(meta, path)
            _update_meta(meta, current, value, path, stamp)
        else:
            _drop(meta, path)
            if value is not None:
                meta[path] = dict(stamp)
