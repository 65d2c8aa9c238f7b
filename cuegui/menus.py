"""Menus, toolbars and context menus of the main window."""

from __future__ import annotations

from qtpy.QtGui import QAction, QActionGroup, QKeySequence

from cuegui import permissions, theme

JOB_TOOLBAR = ["submit", None, "pause", "resume", "retry", "eat", "kill", None, "why"]
JOB_MENU = ["pause", "resume", "clear_resume", None, "retry", "eat", None, "kill", None,
            "priority", "slots", "project", None, "why", "badhosts"]
FRAME_TOOLBAR = ["log", "copy", None, "retry", "eat", "kill", None, "why"]
FRAME_MENU = ["log", "copy", None, "retry", "eat", None, "kill", None, "why"]
HOST_TOOLBAR = ["lock", "unlock", "purge", None, "slots", "tags", "drain", None, "admission"]
HOST_MENU = ["lock", "partial", "unlock", None, "purge", None, "slots", "tags", None, "drain",
             "drain_exit", "drain_reboot", "undrain", None, "checkpath"]
# The farm-wide lists: in the Hosts menu, not in a host's context menu.
HOST_FARM_MENU = ["admission", "schedules", "pathmaps"]


def _fill(target, actions) -> None:
    for action in actions:
        if action is None:
            target.addSeparator()
        else:
            target.addAction(action)


def build_toolbars(w) -> None:
    """Each panel's toolbar, and the views' context menus."""
    ja, ha = w.job_actions, w.host_actions
    for panel, group, order in ((w.jobs_panel, ja.jobs, JOB_TOOLBAR),
                                (w.frames_panel, ja.frames, FRAME_TOOLBAR),
                                (w.hosts_panel, ha.hosts, HOST_TOOLBAR)):
        panel.toolbar.setObjectName(f"{panel.__class__.__name__}Toolbar")
        _fill(panel.toolbar, group.menu(order))
    w.jobs_view.context_actions = ja.jobs.menu(JOB_MENU)
    w.frames_view.context_actions = ja.frames.menu(FRAME_MENU)
    w.hosts_view.context_actions = ha.hosts.menu(HOST_MENU)
    w.job_panel.graph.context_actions = ja.deps.menu(["satisfy", "drop"])
    w.frames_view.doubleClicked.connect(lambda _index: ja.frames["log"].trigger())


def build_menus(w) -> None:
    bar = w.menuBar()
    ja, ha = w.job_actions, w.host_actions
    file_menu = bar.addMenu("&File")
    file_menu.addAction(ja.jobs["submit"])
    resync = file_menu.addAction(theme.icon("refresh"), "Reload from supervisor")
    resync.setShortcut("F5")
    resync.triggered.connect(w.connection.resync)
    file_menu.addSeparator()
    quit_action = file_menu.addAction("Quit")
    quit_action.setShortcut(QKeySequence.StandardKey.Quit)
    quit_action.triggered.connect(w.close)
    for title, actions in (("&Jobs", ja.jobs.menu(JOB_MENU)),
                           ("F&rames", ja.frames.menu(FRAME_MENU)),
                           ("&Dependencies", ja.deps.menu(["satisfy", "drop"])),
                           ("&Hosts", ha.hosts.menu(HOST_MENU + [None] + HOST_FARM_MENU))):
        menu = bar.addMenu(title)
        menu.setToolTipsVisible(True)
        _fill(menu, actions)
    view_menu = bar.addMenu("&View")
    for dock in w.docks():
        view_menu.addAction(dock.toggleViewAction())
    view_menu.addSeparator()
    w.light_action = QAction(theme.icon("theme"), "Light theme", w)
    w.light_action.setCheckable(True)
    w.light_action.setChecked(w.theme_name == "light")
    w.light_action.toggled.connect(lambda on: w.set_theme("light" if on else "dark"))
    view_menu.addAction(w.light_action)
    w.notices_action = QAction("Tell me when my jobs finish or fail", w, checkable=True)
    w.notices_action.setStatusTip("A desktop notice (or a status bar message) when a job of "
                                  "yours finishes or gets dead frames")
    w.notices_action.setChecked(w.job_notices.enabled)
    w.notices_action.toggled.connect(w.job_notices.set_enabled)
    view_menu.addAction(w.notices_action)
    mode_menu = view_menu.addMenu("Mode")
    group = QActionGroup(w)
    w.mode_actions = {}
    tips = {permissions.ARTIST: "Act on your own jobs",
            permissions.WRANGLER: "Act on every job; priorities, slots, projects, dependencies",
            permissions.ADMIN: "Everything, and host management"}
    for mode in permissions.MODES:
        action = QAction(mode.title(), w, checkable=True)
        action.setStatusTip(tips[mode])
        action.setChecked(mode == w.mode)
        action.triggered.connect(lambda _on=False, m=mode: w.set_mode(m))
        group.addAction(action)
        mode_menu.addAction(action)
        w.mode_actions[mode] = action
    view_menu.addSeparator()
    reset = view_menu.addAction("Reset layout")
    reset.triggered.connect(w.reset_layout)
