"""Frame actions against a real supervisor and real workers (retrying running frames asks
first), and the window's keyboard shortcuts (one action per key sequence)."""

from __future__ import annotations

from collections import Counter

import pytest
from qtpy.QtGui import QAction, QKeySequence

from cuegui.connection import Connection
from cuegui.jobactions import retry_question
from cuegui.window import MainWindow
from tests.cuegui.test_live import SLOW, Prompts, job_spec, select_job, trigger, wait


@pytest.fixture
def answering(qtbot, sqlite_farm):
    """One worker with two slots; the window's questions are answered by `win.answer`."""
    farm = sqlite_farm
    farm.start_rqd("render01", 2)
    farm.wait_hosts_up(["render01"])
    conn = Connection(farm.address, idle_ping=1.0)
    asked: list[str] = []

    def confirm(_parent, question):
        asked.append(question)
        return win.answer

    win = MainWindow(conn, mode="admin", prompts=Prompts(), confirm=confirm)
    win.asked, win.answer = asked, False
    qtbot.addWidget(win)
    win.show()
    conn.start()
    wait(qtbot, lambda: win.connection_state == "connected" and win.hosts_model.rowCount())
    yield farm, win
    win.close()


def test_retrying_running_frames_asks_and_declining_changes_nothing(qtbot, answering):
    farm, win = answering
    client = farm.client()
    [job_id] = client.submit(job_spec("long", SLOW, "1-2"))
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: [f["state"] for f in win.frames_model.all_rows()]
         == ["RUNNING", "RUNNING"])
    before = {f["id"]: f["attempt"] for f in client.frames(job_id)}
    win.frames_view.selectAll()
    wait(qtbot, lambda: len(win.frames_view.selected_rows()) == 2)
    trigger(qtbot, win.action_set.frames["retry"])
    assert win.asked[-1] == "Retry all 2 running frames? Their processes are killed and " \
                            "they start again; work done so far is lost."
    # Declined: nothing was sent; the frames keep running their first attempt.
    qtbot.wait(1500)
    after = client.frames(job_id)
    assert {f["id"]: f["attempt"] for f in after} == before
    assert {f["state"] for f in after} == {"RUNNING"}
    # Accepted: both restart as a new attempt.
    win.answer = True
    trigger(qtbot, win.action_set.frames["retry"])
    wait(qtbot, lambda: all(f["attempt"] > before[f["id"]] for f in client.frames(job_id)))
    wait(qtbot, lambda: all(f["attempt"] > before[f["id"]]
                            for f in win.frames_model.all_rows()))
    client.kill(job_id)


def test_retry_question_names_how_many_are_running():
    running, dead = {"state": "RUNNING"}, {"state": "DEAD"}
    assert retry_question([running]).startswith("Retry the running frame?")
    assert retry_question([running, dead, dead]).startswith(
        "Retry 3 frames? 1 of them is running")
    assert retry_question([running, running, dead]).startswith(
        "Retry 3 frames? 2 of them are running")


def test_retrying_only_dead_frames_does_not_ask(qtbot, answering):
    farm, win = answering
    client = farm.client()
    fail = [SLOW[0], "-c", "import sys; sys.exit(2)"]
    [job_id] = client.submit(job_spec("fails", fail, "1", max_retries=0))
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: [f["state"] for f in win.frames_model.all_rows()] == ["DEAD"])
    win.frames_view.selectAll()
    asked = len(win.asked)
    trigger(qtbot, win.action_set.frames["retry"])
    assert len(win.asked) == asked
    wait(qtbot, lambda: client.frames(job_id)[0]["attempt"] >= 2)


@pytest.fixture
def idle_window(qtbot):
    """A window on a supervisor that is not there: enough to look at its actions."""
    win = MainWindow(Connection("127.0.0.1:9"), mode="admin", prompts=Prompts())
    qtbot.addWidget(win)
    yield win
    win.close()


def test_no_two_actions_share_a_shortcut(idle_window):
    win = idle_window
    sequences = Counter()
    owners: dict[str, list[str]] = {}
    for action in win.findChildren(QAction):
        for seq in action.shortcuts():
            text = seq.toString(QKeySequence.SequenceFormat.PortableText)
            sequences[text] += 1
            owners.setdefault(text, []).append(f"{action.objectName()}:{action.text()}")
    assert sequences, "no shortcuts at all"
    assert {s: owners[s] for s, n in sequences.items() if n > 1} == {}
    # Ctrl+W means close a window to most people: not used for Why.
    assert "Ctrl+W" not in sequences


@pytest.mark.parametrize("group, key, sequence", [
    ("frames", "retry", "Ctrl+Alt+R"), ("frames", "kill", "Ctrl+Alt+K"),
    ("frames", "eat", "Ctrl+Alt+E"), ("frames", "why", "Ctrl+Alt+Y"),
    ("jobs", "why", "Ctrl+Shift+Y"), ("hosts", "lock", "Ctrl+Shift+L"),
    ("hosts", "unlock", "Ctrl+Shift+U"),
])
def test_frame_and_host_actions_have_shortcuts(idle_window, group, key, sequence):
    action = getattr(idle_window.action_set, group)[key]
    assert action.shortcut().toString(QKeySequence.SequenceFormat.PortableText) == sequence


def test_submit_with_advanced_fields_reaches_the_supervisor(qtbot, answering):
    farm, win = answering
    dialog = win.open_submit()
    assert not any(dialog.error_at(k) for k in dialog.errors)      # fresh: no red
    dialog.set_values(name="advanced", command="echo #FRAME#", range="1-2", os="linux",
                      hosts="render*", omit_hosts="old-*", gpus=0, timeout=3600,
                      timeout_no_output=600, requirements="host.cores >= 1")
    dialog.submit_button.click()
    wait(qtbot, lambda: any(j["name"] == "advanced" for j in win.jobs_model.all_rows()))
    job = next(j for j in win.jobs_model.all_rows() if j["name"] == "advanced")
    [layer] = farm.client().layers(job["id"])
    assert layer["os"] == "linux" and layer["hosts"] == ["render*"]
    assert layer["omit_hosts"] == ["old-*"] and layer["requirements"] == "host.cores >= 1"
    assert layer["timeout"] == 3600 and layer["timeout_no_output"] == 600
    wait(qtbot, lambda: win.jobs_model.get(job["id"])["status"] == "finished")


def test_bad_hosts_of_a_job_and_clearing_them(qtbot, answering):
    from qtpy.QtWidgets import QPushButton
    farm, win = answering
    client = farm.client()
    fail = [SLOW[0], "-c", "import sys; sys.exit(5)"]
    [job_id] = client.submit(job_spec("badhost", fail, "1-4", max_retries=0))
    wait(qtbot, lambda: any(r["banned"] for r in client.bad_hosts(job_id)))
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    assert win.jobs_view.select_id(job_id)
    # A wrangler-only clear: in artist mode the list shows, its clear buttons say why not.
    win.set_mode("artist")
    win.user = win.jobs_model.get(job_id)["user"]
    trigger(qtbot, win.action_set.jobs["badhosts"])
    d = win.job_actions.bad_hosts_dialog
    wait(qtbot, lambda: d.table.rowCount() == 1)
    assert d.text_at(0, 0) == "render01" and int(d.text_at(0, 1)) >= 3
    assert d.text_at(0, 2) not in ("", "not banned")
    d.table.selectRow(0)
    assert not d.clear_button.isEnabled() and "for wranglers" in d.clear_button.toolTip()
    d.close()
    win.set_mode("wrangler")
    trigger(qtbot, win.action_set.jobs["badhosts"])
    d = win.job_actions.bad_hosts_dialog
    wait(qtbot, lambda: d.table.rowCount() == 1)
    d.table.selectRow(0)
    assert d.clear_button.isEnabled()
    d.findChild(QPushButton, "clear").click()
    wait(qtbot, lambda: d.table.rowCount() == 0)
    assert client.bad_hosts(job_id) == []


def test_frames_show_why_nothing_ran_and_a_flagged_job_is_cleared_and_resumed(qtbot,
                                                                            answering):
    farm, win = answering
    client = farm.client()
    [missing] = client.submit(job_spec("missing", ["/no/such/program-cuefarm"], "1"))
    wait(qtbot, lambda: client.job(missing)["state"] == "PAUSED")
    select_job(qtbot, win, missing)
    column = [c.key for c in win.frames_model.columns].index("reason")
    wait(qtbot, lambda: win.frames_model.rowCount() == 1 and "not found on this host" in
         (win.frames_model.index(0, column).data() or ""))
    assert client.bad_hosts(missing) == []      # the job's problem: no host kept off it

    fail = [SLOW[0], "-c", "import sys; sys.exit(5)"]
    [job_id] = client.submit(job_spec("flagged", fail, "1-2", max_retries=50))
    wait(qtbot, lambda: client.job(job_id)["state"] == "PAUSED"
         and not client.job(job_id)["running"])
    assert client.bad_hosts(job_id)
    tries = sum(f["attempt"] for f in client.frames(job_id))
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: (win.jobs_model.get(job_id) or {}).get("state") == "PAUSED")
    action = win.action_set.jobs["clear_resume"]
    wait(qtbot, action.isEnabled)
    trigger(qtbot, action)
    # Its only host was kept off it: another attempt proves it was cleared and resumed.
    wait(qtbot, lambda: sum(f["attempt"] for f in client.frames(job_id)) > tries)
