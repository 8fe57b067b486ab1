"""Rollouts: one change carried to many Things in waves, with thresholds (pure rules).

A rollout's spec names its target (a query, parsed here), its change (checked by the change
kind: `services/rollout_kinds.py`), its waves and the limits on how fast it goes. The target
set is fixed when it starts: the matching Things, in a stable order spread by a hash, are cut
into waves (`wave_sizes`). Which Things may start at an instant (`admissible`), whether the
next wave opens (`gate`), whether the failure threshold is reached (`failure_reached`) and
how the rollout's status moves (`RULES`, an ordered list evaluated first match wins, the way
Prefect writes its orchestration policies and hawkBit its rollout conditions) are functions
of a `Snapshot`, so tests drive every rule without a database or a clock.

Decisions (docs/decisions.md, "Rollouts"):
- a wave `{"percent": p}` is ceil(p% of the target), at least 1; `{"count": n}` is n; each
  capped at what is left. The last listed wave repeats until every Thing is in a wave (as
  Ansible's `serial` does), so its last repeat may be smaller.
- a wave opens when the previous one has reached its success threshold (succeeded >=
  ceil(p% of its size)), or without one when every Thing of it has finished; then after the
  previous wave's `wait`. A wave that finished below its threshold halts the rollout.
- the failure threshold counts the whole rollout: `count` failed Things, or `percent` of the
  finished ones once `min_executed` (default 1) have finished.
- `rate_per_minute`: at most that many starts in any 60 s (a sliding window).
- the window is daily, `{"start": "22:00", "end": "04:00", "tz": "Europe/Paris"}` (end
  before start: it spans midnight); Things start only inside it, in-flight ones go on.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iotas.domain import clock
from iotas.domain.errors import Conflict, InvalidInput
from iotas.domain.query import parse as parse_query

MAX_NAME: Final = 200
MAX_WAVES: Final = 100
MAX_WAIT_S: Final = 30 * 86_400
MAX_TIMEOUT_S: Final = 30 * 86_400
DEFAULT_TIMEOUT_S: Final = 3600.0
ID_RE: Final = re.compile(r"^ro-[0-9a-z]{1,64}$")


class Status(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    SUCCEEDED = "succeeded"
    HALTED = "halted"
    CANCELLED = "cancelled"


FINAL: Final = frozenset({Status.SUCCEEDED, Status.HALTED, Status.CANCELLED})


class ThingStatus(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Never started (the rollout was cancelled, or the Thing was deleted before its turn).
    CANCELLED = "cancelled"


THING_FINAL: Final = frozenset({ThingStatus.SUCCEEDED, ThingStatus.FAILED, ThingStatus.CANCELLED})


# -- the spec --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wave:
    count: int | None = None
    percent: float | None = None
    wait_s: float = 0.0

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"count": self.count} if self.count is not None else {}
        if self.percent is not None:
            doc["percent"] = self.percent
        if self.wait_s:
            doc["wait"] = self.wait_s
        return doc


@dataclass(frozen=True, slots=True)
class FailureThreshold:
    percent: float | None = None
    count: int | None = None
    min_executed: int = 1

    def as_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"min_executed": self.min_executed}
        if self.percent is not None:
            doc["percent"] = self.percent
        if self.count is not None:
            doc["count"] = self.count
        return doc


@dataclass(frozen=True, slots=True)
class Window:
    """Daily, from `start` to `end` (minutes after midnight) in time zone `tz`."""

    start_min: int
    end_min: int
    tz: str

    def open_at(self, now_us: int) -> bool:
        local = datetime.fromtimestamp(now_us / 1_000_000, UTC).astimezone(ZoneInfo(self.tz))
        minute = local.hour * 60 + local.minute
        if self.start_min < self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min  # spans midnight

    def as_json(self) -> dict[str, Any]:
        return {"start": _hhmm(self.start_min), "end": _hhmm(self.end_min), "tz": self.tz}


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    target: str
    change: dict[str, Any]
    waves: tuple[Wave, ...] = (Wave(percent=100.0),)
    max_in_flight: int | None = None
    rate_per_minute: int | None = None
    success_percent: float | None = None
    failure: FailureThreshold | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    start_at_us: int | None = None
    window: Window | None = None
    continuous: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "change": self.change,
            "waves": [wave.as_json() for wave in self.waves],
            "max_in_flight": self.max_in_flight,
            "rate_per_minute": self.rate_per_minute,
            "success_threshold": None
            if self.success_percent is None
            else {"percent": self.success_percent},
            "failure_threshold": None if self.failure is None else self.failure.as_json(),
            "timeout": self.timeout_s,
            "start_at": None if self.start_at_us is None else clock.to_rfc3339(self.start_at_us),
            "window": None if self.window is None else self.window.as_json(),
            "continuous": self.continuous,
        }

    @property
    def change_type(self) -> str:
        return str(self.change["type"])


SPEC_MEMBERS: Final = frozenset(
    {
        "name",
        "target",
        "change",
        "waves",
        "max_in_flight",
        "rate_per_minute",
        "success_threshold",
        "failure_threshold",
        "timeout",
        "start_at",
        "window",
        "continuous",
    }
)


def parse_spec(body: object, check_change: Callable[[object], dict[str, Any]]) -> Spec:
    """The spec of `body` (the API's JSON), or InvalidInput naming the member at fault.
    `check_change` is the change kind's check (it names its own members `change/...`)."""
    if not isinstance(body, dict):
        raise InvalidInput('a rollout is a JSON object: {"name", "target", "change", ...}')
    unknown = sorted(set(body) - SPEC_MEMBERS)
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(unknown)} in a rollout", field=unknown[0])
    name = body.get("name")
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= MAX_NAME:
        raise InvalidInput(f"name must be a string of 1-{MAX_NAME} characters", field="name")
    target = body.get("target")
    if not isinstance(target, str) or not target.strip():
        raise InvalidInput(
            "target must be a query naming the Things (docs/query.md)", field="target"
        )
    try:
        parse_query(target)
    except InvalidInput as exc:
        raise InvalidInput(f"target: {exc.detail}", field="target") from None
    start_at = body.get("start_at")
    if start_at is not None and not isinstance(start_at, str):
        raise InvalidInput("start_at must be an RFC 3339 instant", field="start_at")
    continuous = _given(body, "continuous", False)
    if not isinstance(continuous, bool):
        raise InvalidInput("continuous must be true or false", field="continuous")
    return Spec(
        name=name.strip(),
        target=target.strip(),
        change=check_change(body.get("change")),
        waves=_waves(body.get("waves")),
        max_in_flight=_whole(body.get("max_in_flight"), "max_in_flight", 1, 1_000_000),
        rate_per_minute=_whole(body.get("rate_per_minute"), "rate_per_minute", 1, 10_000_000),
        success_percent=_success(body.get("success_threshold")),
        failure=_failure(body.get("failure_threshold")),
        timeout_s=_seconds(
            _given(body, "timeout", DEFAULT_TIMEOUT_S), "timeout", MAX_TIMEOUT_S, 1.0
        ),
        start_at_us=None if start_at is None else clock.parse_rfc3339(start_at, name="start_at"),
        window=_window(body.get("window")),
        continuous=continuous,
    )


def spec_from_json(doc: Mapping[str, Any]) -> Spec:
    """A stored spec (`Spec.as_json`) back; it was checked when the rollout was made."""
    return parse_spec(dict(doc), lambda change: dict(change) if isinstance(change, dict) else {})


def _given(body: dict[str, Any], name: str, default: object) -> object:
    """The member, or `default` when absent or null."""
    value = body.get(name)
    return default if value is None else value


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}", field=name)
    return value


def _percent(value: object, name: str) -> float:
    if not _number(value) or not 0 < float(value) <= 100:  # type: ignore[arg-type]
        raise InvalidInput(f"{name} must be a number above 0 and at most 100", field=name)
    return float(value)  # type: ignore[arg-type]


def _seconds(value: object, name: str, high: float, low: float = 0.0) -> float:
    if not _number(value) or not low <= float(value) <= high:  # type: ignore[arg-type]
        raise InvalidInput(
            f"{name} must be a number of seconds from {low:g} to {high:g}", field=name
        )
    return float(value)  # type: ignore[arg-type]


def _members(value: object, name: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{name} must be a JSON object", field=name)
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(unknown)} in {name}", field=name)
    return {key: member for key, member in value.items() if member is not None}


def _waves(value: object) -> tuple[Wave, ...]:
    if value is None:
        return (Wave(percent=100.0),)
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_WAVES:
        raise InvalidInput(f"waves must be a list of 1-{MAX_WAVES} waves", field="waves")
    waves = []
    for index, item in enumerate(value):
        at = f"waves/{index}"
        wave = _members(item, at, {"count", "percent", "wait"})
        if ("count" in wave) == ("percent" in wave):
            raise InvalidInput(f'{at} must have one of "count" or "percent"', field=at)
        wait = _seconds(_given(wave, "wait", 0), f"{at}/wait", MAX_WAIT_S)
        if "count" in wave:
            count = _whole(wave["count"], f"{at}/count", 1, 10_000_000)
            waves.append(Wave(count=count, wait_s=wait))
        else:
            waves.append(Wave(percent=_percent(wave["percent"], f"{at}/percent"), wait_s=wait))
    return tuple(waves)


def _success(value: object) -> float | None:
    if value is None:
        return None
    doc = _members(value, "success_threshold", {"percent"})
    return _percent(doc.get("percent"), "success_threshold/percent")


def _failure(value: object) -> FailureThreshold | None:
    if value is None:
        return None
    doc = _members(value, "failure_threshold", {"percent", "count", "min_executed"})
    if ("count" in doc) == ("percent" in doc):
        raise InvalidInput(
            'failure_threshold must have one of "count" or "percent"', field="failure_threshold"
        )
    min_executed = _whole(
        _given(doc, "min_executed", 1), "failure_threshold/min_executed", 1, 10**7
    )
    if "count" in doc:
        count = _whole(doc["count"], "failure_threshold/count", 1, 10_000_000)
        return FailureThreshold(count=count, min_executed=min_executed or 1)
    percent = _percent(doc["percent"], "failure_threshold/percent")
    return FailureThreshold(percent=percent, min_executed=min_executed or 1)


_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _minutes(value: object, name: str) -> int:
    match = _HHMM.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInput(f"{name} must be a time of day HH:MM (24 h)", field=name)
    return int(match[1]) * 60 + int(match[2])


def _window(value: object) -> Window | None:
    if value is None:
        return None
    doc = _members(value, "window", {"start", "end", "tz"})
    start, end = _minutes(doc.get("start"), "window/start"), _minutes(doc.get("end"), "window/end")
    if start == end:
        raise InvalidInput("window/start and window/end must differ", field="window")
    tz = doc.get("tz", "UTC")
    try:
        if not isinstance(tz, str) or not tz:
            raise ValueError(tz)
        ZoneInfo(tz)
    except (ValueError, ZoneInfoNotFoundError):
        raise InvalidInput(
            "window/tz must be an IANA time zone such as UTC or Europe/Paris", field="window/tz"
        ) from None
    return Window(start, end, tz)


# -- waves -----------------------------------------------------------------------------------


def wave_sizes(waves: Sequence[Wave], total: int) -> list[int]:
    """The size of each wave over a fixed target of `total` Things: each listed wave in turn,
    the last repeating until all are covered; percents round up (at least 1 Thing)."""
    sizes: list[int] = []
    left = total
    index = 0
    while left > 0:
        wave = waves[min(index, len(waves) - 1)]
        if wave.count is not None:
            size = wave.count
        else:
            assert wave.percent is not None
            size = max(1, math.ceil(wave.percent * total / 100 - 1e-9))
        size = min(size, left)
        sizes.append(size)
        left -= size
        index += 1
    return sizes


def wave_of(waves: Sequence[Wave], index: int) -> Wave:
    """The spec of wave `index` (the last listed one repeats)."""
    return waves[min(index, len(waves) - 1)]


def spread(rollout_id: str, thing_ids: Sequence[str]) -> list[str]:
    """The target in its stable rollout order: by a hash of the rollout and the Thing, so a
    wave is a sample across namespaces and sites rather than the first ids in order."""
    return sorted(
        thing_ids, key=lambda thing_id: hashlib.sha256(f"{rollout_id}/{thing_id}".encode()).digest()
    )


def assign_waves(sizes: Sequence[int]) -> list[int]:
    """The wave of each position of the spread target."""
    return [wave for wave, size in enumerate(sizes) for _ in range(size)]


# -- the snapshot the rules read -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaveCounts:
    size: int
    counts: Mapping[str, int] = field(default_factory=dict)

    def of(self, status: ThingStatus) -> int:
        return self.counts.get(status, 0)

    @property
    def finished(self) -> int:
        return sum(self.of(status) for status in THING_FINAL)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the rules see of one rollout at `now_us`. `opens` holds, per wave, when it opens
    (opened: <= now; None: not yet decided); `started_last_minute`, the starts of the past
    60 s (for the rate)."""

    spec: Spec
    status: Status
    now_us: int
    waves: Sequence[WaveCounts]
    opens: Sequence[int | None]
    started_last_minute: int = 0
    # Whether its target was fixed (it started); a rollout paused before it started goes
    # back to scheduled when resumed.
    started: bool = True

    def total(self, status: ThingStatus) -> int:
        return sum(wave.of(status) for wave in self.waves)

    @property
    def size(self) -> int:
        return sum(wave.size for wave in self.waves)

    @property
    def finished(self) -> int:
        return sum(wave.finished for wave in self.waves)

    def opened(self, wave: int) -> bool:
        at = self.opens[wave] if wave < len(self.opens) else None
        return at is not None and at <= self.now_us

    @property
    def window_open(self) -> bool:
        return self.spec.window is None or self.spec.window.open_at(self.now_us)


def required(spec: Spec, size: int) -> int:
    """Successes a wave of `size` needs before the next may open (all of it finished when
    the spec sets no success threshold: see `gate`)."""
    if spec.success_percent is None:
        return 0
    return math.ceil(spec.success_percent * size / 100 - 1e-9)


def gate(spec: Spec, wave: WaveCounts) -> bool:
    """Has this wave done what the next one waits for?"""
    if spec.success_percent is None:
        return wave.finished >= wave.size
    return wave.of(ThingStatus.SUCCEEDED) >= required(spec, wave.size)


def stuck(spec: Spec, wave: WaveCounts) -> bool:
    """Finished below its success threshold: it can never open the next wave."""
    return (
        spec.success_percent is not None
        and wave.finished >= wave.size
        and wave.of(ThingStatus.SUCCEEDED) < required(spec, wave.size)
    )


def next_openings(snap: Snapshot) -> list[tuple[int, int]]:
    """Waves whose opening time is decided now: (wave, opens at). A wave's time is decided
    when the previous one is open and through its gate: then, plus its `wait`."""
    found: list[tuple[int, int]] = []
    for index in range(1, len(snap.waves)):
        if snap.opens[index] is not None:
            continue
        if snap.opened(index - 1) and gate(snap.spec, snap.waves[index - 1]):
            wait_us = round(wave_of(snap.spec.waves, index - 1).wait_s * 1_000_000)
            found.append((index, snap.now_us + wait_us))
        break  # one wave at a time: wave k+1 is decided only once wave k is
    return found


def failure_reached(snap: Snapshot) -> bool:
    threshold = snap.spec.failure
    if threshold is None:
        return False
    failed = snap.total(ThingStatus.FAILED)
    if threshold.count is not None:
        return failed >= threshold.count
    assert threshold.percent is not None
    executed = snap.total(ThingStatus.SUCCEEDED) + failed
    if executed < threshold.min_executed or executed == 0:
        return False
    return failed * 100 >= threshold.percent * executed


def admissible(snap: Snapshot) -> tuple[int, list[int]]:
    """How many Things may start now, and from which waves (open ones, lowest first).
    Nothing starts unless the rollout runs and the window is open."""
    if snap.status is not Status.RUNNING or not snap.window_open:
        return 0, []
    waves = [
        index
        for index, wave in enumerate(snap.waves)
        if snap.opened(index) and wave.of(ThingStatus.PENDING) > 0
    ]
    room = sum(snap.waves[index].of(ThingStatus.PENDING) for index in waves)
    if snap.spec.max_in_flight is not None:
        room = min(room, snap.spec.max_in_flight - snap.total(ThingStatus.IN_FLIGHT))
    if snap.spec.rate_per_minute is not None:
        room = min(room, snap.spec.rate_per_minute - snap.started_last_minute)
    return max(room, 0), waves if room > 0 else []


# -- the status machine ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rule:
    """A transition: from one of `sources` to `target` when `guard` holds. `command` names an
    operator's command (pause, resume, cancel); a rule without one the controller tries."""

    name: str
    sources: frozenset[Status]
    target: Status
    guard: Callable[[Snapshot], bool]
    command: str | None = None


def _all_done(snap: Snapshot) -> bool:
    return not snap.spec.continuous and snap.finished >= snap.size


def _any_stuck(snap: Snapshot) -> bool:
    return any(stuck(snap.spec, wave) for wave in snap.waves)


def _due(snap: Snapshot) -> bool:
    return snap.spec.start_at_us is None or snap.spec.start_at_us <= snap.now_us


def _unstarted(snap: Snapshot) -> bool:
    return not snap.started


def _always(_snap: Snapshot) -> bool:
    return True


_ACTIVE = frozenset({Status.SCHEDULED, Status.RUNNING, Status.PAUSED})

# In order; the first rule whose source and guard match fires. Failure before success: a
# rollout whose last Thing failed past the threshold is halted, not succeeded.
RULES: Final[tuple[Rule, ...]] = (
    Rule("cancel", _ACTIVE, Status.CANCELLED, _always, command="cancel"),
    Rule("pause", frozenset({Status.SCHEDULED, Status.RUNNING}), Status.PAUSED, _always, "pause"),
    Rule("resume", frozenset({Status.PAUSED}), Status.SCHEDULED, _unstarted, command="resume"),
    Rule("resume", frozenset({Status.PAUSED}), Status.RUNNING, _always, command="resume"),
    Rule("failure_threshold", frozenset({Status.RUNNING, Status.PAUSED}), Status.HALTED,
         failure_reached),
    Rule("below_success_threshold", frozenset({Status.RUNNING}), Status.HALTED, _any_stuck),
    Rule("all_finished", frozenset({Status.RUNNING}), Status.SUCCEEDED, _all_done),
    Rule("start", frozenset({Status.SCHEDULED}), Status.RUNNING, _due),
)  # fmt: skip


def decide(snap: Snapshot, command: str | None = None) -> Rule | None:
    """The rule that fires for `snap` (and the operator's `command`, if any), or None."""
    for rule in RULES:
        if rule.command == command and snap.status in rule.sources and rule.guard(snap):
            return rule
    return None


def commanded(snap: Snapshot, command: str) -> Rule:
    """The rule for an operator's command, or Conflict (409) saying why not."""
    rule = decide(snap, command)
    if rule is None:
        done = {"cancel": "cancelled", "pause": "paused", "resume": "resumed"}.get(command, command)
        raise Conflict(f"a {snap.status} rollout cannot be {done}", status=str(snap.status))
    return rule


COMMANDS: Final = frozenset(rule.command for rule in RULES if rule.command is not None)
