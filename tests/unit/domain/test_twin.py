from iotas.domain.twin import Twin, delta


def test_delta_is_nested_and_uses_json_equality() -> None:
    desired = {"setpoint": 21, "mode": "eco", "net": {"ssid": "a", "channel": 6}, "on": True}
    reported = {"setpoint": 21.0, "mode": "off", "net": {"ssid": "a", "channel": 1}, "on": 1}
    assert delta(desired, reported) == {"mode": "eco", "net": {"channel": 6}, "on": True}
    assert delta({"a": 1}, {}) == {"a": 1}
    assert delta({}, {"a": 1}) == {}


def test_patch_updates_version_metadata_and_status() -> None:
    twin = Twin()
    twin = twin.patched("desired", {"setpoint": 21, "net": {"ssid": "a"}}, ts="T1", source="alice")
    assert twin.version == 1
    assert twin.status == "pending" and twin.pending_since == "T1"
    assert twin.desired_meta == {
        "/setpoint": {"version": 1, "ts": "T1", "source": "alice"},
        "/net/ssid": {"version": 1, "ts": "T1", "source": "alice"},
    }
    twin = twin.patched("reported", {"setpoint": 21}, ts="T2", source="dev")
    assert twin.status == "pending" and twin.pending_since == "T1"
    twin = twin.patched("reported", {"net": {"ssid": "a"}}, ts="T3", source="dev")
    assert twin.version == 3
    assert twin.status == "in_sync" and twin.pending_since is None
    assert twin.delta == {}


def test_metadata_follows_replacements_and_removals() -> None:
    twin = Twin().patched("desired", {"a": {"b": 1, "c": 2}, "x~/y": 1}, ts="T1", source="s")
    assert set(twin.desired_meta) == {"/a/b", "/a/c", "/x~0~1y"}
    twin = twin.patched("desired", {"a": 5}, ts="T2", source="s")
    assert set(twin.desired_meta) == {"/a", "/x~0~1y"}
    twin = twin.patched("desired", {"a": {"d": 1}}, ts="T3", source="s")
    assert set(twin.desired_meta) == {"/a/d", "/x~0~1y"}
    twin = twin.patched("desired", {"a": None}, ts="T4", source="s")
    assert set(twin.desired_meta) == {"/x~0~1y"}
    assert twin.desired_meta["/x~0~1y"]["version"] == 1


def test_to_dict_shape() -> None:
    doc = Twin().patched("desired", {"a": 1}, ts="T1", source="s").to_dict()
    assert set(doc) == {
        "desired",
        "reported",
        "delta",
        "version",
        "status",
        "pending_since",
        "drifted_since",
        "metadata",
    }
    assert doc["delta"] == {"a": 1}


def test_a_thing_that_leaves_its_desired_state_on_its_own_has_drifted() -> None:
    twin = Twin().patched("desired", {"sp": 20}, ts="t1", source="alice")
    assert twin.status == "pending" and twin.drifted_since is None
    # Catching up, on the way through another value: pending, never drifted.
    twin = twin.patched("reported", {"sp": 18}, ts="t2", source="dev")
    assert twin.status == "pending" and twin.drifted_since is None
    twin = twin.patched("reported", {"sp": 20}, ts="t3", source="dev")
    assert twin.status == "in_sync"
    # Moved away on its own: drifted since then, and still after further reports.
    twin = twin.patched("reported", {"sp": 17}, ts="t4", source="dev")
    assert twin.status == "drifted" and twin.drifted_since == "t4"
    twin = twin.patched("reported", {"other": 1}, ts="t5", source="dev")
    assert twin.status == "drifted" and twin.drifted_since == "t4"
    assert twin.to_dict()["drifted_since"] == "t4"
    # Put back: in sync. A new desired target clears it too.
    assert twin.patched("reported", {"sp": 20}, ts="t6", source="dev").status == "in_sync"
    retarget = twin.patched("desired", {"sp": 25}, ts="t6", source="alice")
    assert retarget.status == "pending" and retarget.drifted_since is None
