"""The host view's admin actions against a real supervisor and real rqd workers: drain with
its then and cancelling it, partial locks, admission, lock schedules, path maps and checking a
path on a host.  Each action changes the supervisor's state and the view follows."""

from __future__ import annotations

import pytest
from pytestqt.qt_compat import qt_api

from tests.cuegui.test_live import Prompts, open_window, trigger, wait
from tests.farm import running_farm


class HostPrompts(Prompts):
    """What an admin types into the host dialogs."""

    def __init__(self):
        self.schedule_values = {"target": "render*", "days": [0, 1, 2, 3, 4], "start": "09:00",
                                "end": "19:00", "purge": True}
        self.map_values = {"os": "linux", "source": "/mnt/proj", "target": "/srv/proj",
                           "tag": None}

    def integer(self, *args):
        return 1

    def text(self, title, label, value=""):
        return "not ours"

    def schedule(self, target=""):
        return dict(self.schedule_values)

    def path_map(self):
        return dict(self.map_values)


@pytest.fixture
def admin_farm(sqlite_url, tmp_path):
    """A supervisor whose refused workers ask again after a second (an admitted one joins
    at once instead of a minute later)."""
    with running_farm(sqlite_url, tmp_path, {"CUEFARM_SUPERVISOR_ADMISSION_RETRY": "1"}) as f:
        yield f


@pytest.fixture
def hostwin(qtbot, admin_farm):
    farm = admin_farm
    win = open_window(farm, HostPrompts())
    qtbot.addWidget(win)
    win.show()
    win.connection.start()
    wait(qtbot, lambda: win.connection_state == "connected"
         and win.hosts_model.rowCount() == 2)
    yield farm, win
    win.close()


def host(win, name):
    return next((r for r in win.hosts_model.all_rows() if r["name"] == name), None)


def select_host(qtbot, win, name):
    win.hosts_dock.raise_()          # host actions act on the hosts in view
    wait(qtbot, lambda: host(win, name) is not None)
    assert win.hosts_view.select_id(host(win, name)["id"])
    wait(qtbot, lambda: [r["name"] for r in win.hosts_view.selected_rows()] == [name])


def test_drain_then_reboot_or_exit_and_cancel(qtbot, hostwin):
    farm, win = hostwin
    actions = win.action_set.hosts
    select_host(qtbot, win, "render01")
    assert actions.reason("undrain") == "none of the selected hosts is draining"
    trigger(qtbot, actions["drain_reboot"])
    assert "reboot" in win.asked[-1]
    wait(qtbot, lambda: host(win, "render01")["drain"] == "reboot")
    assert {h["name"]: h["drain"] for h in farm.client().hosts()}["render01"] == "reboot"
    wait(qtbot, lambda: actions.reason("drain") == "the selected hosts are draining already")
    trigger(qtbot, actions["undrain"])
    wait(qtbot, lambda: host(win, "render01")["drain"] is None)
    trigger(qtbot, actions["drain"])
    assert "until the drain is cancelled" in win.asked[-1]
    assert "unlocked" not in win.asked[-1]
    wait(qtbot, lambda: host(win, "render01")["drain"] == "stay")
    # Drain then exit on an idle host: its rqd process ends.
    select_host(qtbot, win, "render02")
    trigger(qtbot, actions["drain_exit"])
    farm.workers["render02"].wait(30)
    assert farm.workers["render02"].returncode is not None


def test_partial_lock_leaves_the_slots_asked_for(qtbot, hostwin):
    farm, win = hostwin
    select_host(qtbot, win, "render01")
    trigger(qtbot, win.action_set.hosts["partial"])
    wait(qtbot, lambda: host(win, "render01")["slots_total"] == 1)
    row = host(win, "render01")
    assert row["lock"] == "LOCKED" and row["lock_slots"] == 1
    # Not shown as a full lock: the slots left open are named.
    m = win.hosts_model
    assert m.index(m.position(row["id"]), m.column_index("lock")).data() == "PARTIAL (1 open)"
    assert {h["name"]: h["slots_total"] for h in farm.client().hosts()}["render01"] == 1


def test_farm_lists_are_for_admins(qtbot, hostwin):
    _farm, win = hostwin
    win.set_mode("wrangler")
    for key in ("admission", "schedules", "pathmaps", "drain_exit", "undrain", "partial"):
        assert not win.action_set.hosts[key].isEnabled()
    assert "for admins" in win.action_set.hosts.reason("schedules")


def _rows(dialog):
    return [{c[0]: dialog.text_at(r, i) for i, c in enumerate(dialog.columns)}
            for r in range(dialog.table.rowCount())]


def _select(dialog, column, value):
    for r in range(dialog.table.rowCount()):
        if dialog.text_at(r, column) == value:
            dialog.table.selectRow(r)
            return True
    return False


def test_admission_admit_and_ban_pending_hosts(qtbot, hostwin):
    farm, win = hostwin
    client = farm.client()
    client.set_admission(mode="named")
    farm.start_rqd("newbie", 1)
    farm.start_rqd("intruder", 1)
    wait(qtbot, lambda: {r["name"] for r in client.admission() if r["state"] == "pending"}
         >= {"newbie", "intruder"})
    trigger(qtbot, win.action_set.hosts["admission"])
    dialog = win.host_actions.dialogs["admission"]
    wait(qtbot, lambda: {"newbie", "intruder"} <= {r["name"] for r in _rows(dialog)})
    assert all(r["state"] == "pending" for r in _rows(dialog) if r["name"] in ("newbie",
                                                                               "intruder"))
    admit = dialog.findChild(qt_api.QtWidgets.QPushButton, "admit")
    assert not admit.isEnabled()          # nothing selected yet
    assert _select(dialog, 0, "newbie")
    admit.click()
    wait(qtbot, lambda: {r["name"]: r["state"] for r in _rows(dialog)}.get("newbie")
         == "admitted")
    # The admitted worker joins the farm and the host view shows it by event.
    wait(qtbot, lambda: (host(win, "newbie") or {}).get("state") == "UP")
    assert _select(dialog, 0, "intruder")
    dialog.findChild(qt_api.QtWidgets.QPushButton, "ban").click()
    assert "Ban intruder" in win.asked[-1]
    wait(qtbot, lambda: {r["name"]: r["state"] for r in _rows(dialog)}.get("intruder")
         == "banned")
    banned = {r["name"]: r for r in client.admission()}["intruder"]
    assert banned["state"] == "banned" and banned["reason"] == "not ours"
    assert host(win, "intruder") is None


def test_lock_schedules_add_refuse_and_delete(qtbot, hostwin):
    farm, win = hostwin
    client = farm.client()
    trigger(qtbot, win.action_set.hosts["schedules"])
    dialog = win.host_actions.dialogs["schedules"]
    wait(qtbot, lambda: dialog.status.text() == "0 entries")
    dialog.findChild(qt_api.QtWidgets.QPushButton, "add").click()
    wait(qtbot, lambda: dialog.table.rowCount() == 1)
    assert _rows(dialog) == [{"target": "render*", "days": "Mon–Fri",
                              "window": "09:00–19:00", "purge": "yes"}]
    [stored] = client.schedules()
    assert stored["days"] == [0, 1, 2, 3, 4] and stored["purge"] is True
    # A bad schedule: the supervisor's error shows and nothing more is stored.
    win.prompts.schedule_values = {"target": "render*", "days": [1], "start": "25:00",
                                   "end": "19:00"}
    dialog.findChild(qt_api.QtWidgets.QPushButton, "add").click()
    wait(qtbot, lambda: "failed" in dialog.status.text())
    assert "25:00" in dialog.status.text() or "start" in dialog.status.text()
    assert len(client.schedules()) == 1
    assert _select(dialog, 0, "render*")
    dialog.findChild(qt_api.QtWidgets.QPushButton, "delete").click()
    assert "Delete the lock schedule of render*" in win.asked[-1]
    wait(qtbot, lambda: dialog.table.rowCount() == 0)
    assert client.schedules() == []


def test_path_maps_and_check_path_on_a_host(qtbot, hostwin):
    farm, win = hostwin
    client = farm.client()
    trigger(qtbot, win.action_set.hosts["pathmaps"])
    dialog = win.host_actions.dialogs["pathmaps"]
    wait(qtbot, lambda: dialog.status.text() == "0 entries")
    dialog.findChild(qt_api.QtWidgets.QPushButton, "add").click()
    wait(qtbot, lambda: dialog.table.rowCount() == 1)
    assert _rows(dialog)[0] == {"position": "1", "os": "linux", "tag": "all hosts",
                                "source": "/mnt/proj", "target": "/srv/proj"}
    # Check a path on the selected (linux) host: the translated path and the rule.
    select_host(qtbot, win, "render01")
    trigger(qtbot, win.action_set.hosts["checkpath"])
    check = win.host_actions.dialogs["checkpath"]
    assert check.host.currentText() == "render01"
    check.path.setText("/mnt/proj/shot010/comp.exr")
    check.button.click()
    wait(qtbot, lambda: check.result.text() == "/srv/proj/shot010/comp.exr")
    assert "/mnt/proj → /srv/proj" in check.rule.text()
    assert "supervisor" in check.rule.text()
    check.path.setText("/home/elsewhere")
    check.button.click()
    wait(qtbot, lambda: "No rule matched" in check.rule.text())
    assert check.result.text() == "/home/elsewhere"
    check.host.setCurrentText("nosuchhost")
    check.button.click()
    wait(qtbot, lambda: "nosuchhost" in check.rule.text())
    # Delete the rule.
    assert _select(dialog, 3, "/mnt/proj")
    dialog.findChild(qt_api.QtWidgets.QPushButton, "delete").click()
    assert "/mnt/proj" in win.asked[-1]
    wait(qtbot, lambda: dialog.table.rowCount() == 0)
    assert client.path_maps() == []


def test_hosts_table_shows_cpu_disk_gpus_lock_kind_and_drain(qtbot, qtmodeltester, hostwin):
    from qtpy.QtCore import Qt

    from cuegui.models import SortRole
    farm, win = hostwin
    model = win.hosts_model
    client = farm.client()
    client.lock("render01")
    client.drain("render02", then="reboot")
    wait(qtbot, lambda: host(win, "render01")["lock"] == "LOCKED"
         and host(win, "render02")["drain"] == "reboot")
    qtmodeltester.check(model, force_py=True)
    reported = {h["name"]: h for h in client.hosts()}

    def cell(name, key, role=Qt.ItemDataRole.DisplayRole):
        return model.index(model.position(host(win, name)["id"]),
                           model.column_index(key)).data(role)

    for name in ("render01", "render02"):
        h = reported[name]
        assert cell(name, "disk_free_mb", SortRole) == h["disk_free_mb"] > 0
        assert cell(name, "disk_free_mb").endswith(" GB")
        assert cell(name, "cpu_percent", SortRole) is not None
        assert cell(name, "cpu_percent").endswith("%")
        assert cell(name, "gpus", SortRole) == h["gpus"]
    assert cell("render01", "lock_kind") == "manual" and cell("render01", "drain") == ""
    assert cell("render02", "lock_kind") == "drain"
    assert cell("render02", "drain") == "draining, then reboot"
    # Sorting on the raw values, in the model.
    col = model.column_index("lock_kind")
    model.sort(col, Qt.SortOrder.AscendingOrder)
    assert [model.index(r, col).data() for r in range(2)] == ["drain", "manual"]
    col = model.column_index("disk_free_mb")
    model.sort(col, Qt.SortOrder.DescendingOrder)
    values = [model.index(r, col).data(SortRole) for r in range(2)]
    assert values == sorted(values, reverse=True)
    qtmodeltester.check(model, force_py=True)
    client.unlock("render01")
    wait(qtbot, lambda: cell("render01", "lock_kind") == "")


@pytest.mark.parametrize("row, kind, drain", [
    ({"lock": "OPEN", "lock_kind": ""}, "", ""),
    ({"lock": "LOCKED", "lock_kind": "manual", "lock_slots": 2}, "manual", ""),
    ({"lock": "LOCKED", "lock_kind": "schedule"}, "scheduled", ""),
    ({"lock": "LOCKED", "lock_kind": "nimby"}, "idle", ""),
    ({"lock": "OPEN", "lock_kind": "nimby"}, "idle", ""),
    ({"lock": "OPEN", "lock_kind": "", "drain": "stay"}, "drain", "draining"),
    ({"lock": "OPEN", "lock_kind": "", "drain": "exit"}, "drain", "draining, then exit"),
])
def test_lock_kind_and_drain_words(row, kind, drain):
    from cuegui.models.hosts import drain_text, lock_kind
    assert lock_kind(row) == kind and drain_text(row) == drain
