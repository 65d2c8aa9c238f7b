"""The GUI's mode follows the role the supervisor gives its user: against a real supervisor with
roles configured, an artist's window cannot be put in wrangler or admin mode, and says why."""

from __future__ import annotations

import pytest

from cuegui import permissions
from cuegui.connection import Connection
from cuegui.window import MainWindow


def window(qtbot, farm, mode: str) -> MainWindow:
    conn = Connection(farm.address, idle_ping=1.0)
    win = MainWindow(conn, mode=mode, confirm=lambda parent, q: True)
    qtbot.addWidget(win)
    win.show()
    conn.start()
    qtbot.waitUntil(lambda: win.connection_state == "connected" and win.role is not None,
                    timeout=60_000)
    return win


@pytest.mark.parametrize("user,role,top", [("alice", "artist", "artist"),
                                           ("wendy", "wrangler", "wrangler"),
                                           ("boss", "admin", "admin")])
def test_the_mode_is_capped_by_the_supervisors_role(qtbot, sqlite_roles_farm, monkeypatch,
                                                    user, role, top):
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):   # who the GUI's requests say
        monkeypatch.setenv(name, user)
    win = window(qtbot, sqlite_roles_farm, mode="admin")    # remembered from another login
    try:
        assert win.role == role
        assert win.mode == top
        assert win.mode_label.text() == f"{top.title()} mode"
        for m, action in win.mode_actions.items():
            allowed = permissions.RANK[m] <= permissions.RANK[top]
            assert action.isEnabled() == allowed, m
            assert action.isChecked() == (m == top), m
            if not allowed:
                assert f"you are a{'n' if role in ('artist', 'admin') else ''} {role}" \
                    in action.toolTip()
        win.set_mode("admin")                               # as the menu would, if it could
        assert win.mode == top
        if top != "artist":
            win.set_mode("artist")                          # lower is always allowed
            assert win.mode == "artist" and win.mode_actions["artist"].isChecked()
    finally:
        win.close()
