"""The drain state machine, step by step, as a table."""

from __future__ import annotations

import sys

import pytest

from cuefarm import protocol as p
from rqd import drain

EXIT, REBOOT, STAY, CANCEL = (p.Drain("exit"), p.Drain("reboot"), p.Drain("stay"),
                              p.Drain(cancel=True))

# Each step: a Drain message (or "settle": nothing runs any more), then the expected
# (active, drained, what settle returned).
TABLE = {
    "exit": (False, [(EXIT, True, False, None), ("settle", True, True, "exit"),
                     ("settle", True, True, None)]),
    "stay": (False, [(STAY, True, False, None), ("settle", True, True, None),
                     ("settle", True, True, None)]),
    "cancel while running": (False, [(EXIT, True, False, None), (CANCEL, False, False, None),
                                     ("settle", False, False, None)]),
    "cancel once drained": (False, [(STAY, True, False, None), ("settle", True, True, None),
                                    (CANCEL, False, False, None)]),
    "stay, then exit": (False, [(STAY, True, False, None), ("settle", True, True, None),
                                (EXIT, True, False, None), ("settle", True, True, "exit")]),
    "reboot not allowed": (False, [(REBOOT, True, False, None),
                                   ("settle", True, True, "exit")]),
    "reboot allowed": (True, [(REBOOT, True, False, None), ("settle", True, True, "reboot")]),
    "unknown follow-up": (False, [(p.Drain("explode"), False, False, None),
                                  ("settle", False, False, None)]),
    "cancel without a drain": (False, [(CANCEL, False, False, None)]),
}


@pytest.mark.parametrize("name", list(TABLE))
def test_transitions(name):
    allowed, steps = TABLE[name]
    state = drain.DrainState(reboot_allowed=allowed)
    for step, active, drained, settled in steps:
        got = state.settle() if step == "settle" else state.handle(step, stopping=False)
        assert (state.active, state.drained, got) == (active, drained, settled), (name, step)


def test_cancel_is_too_late_once_exiting():
    state = drain.DrainState()
    state.handle(EXIT, stopping=False)
    assert state.settle() == "exit"
    state.handle(CANCEL, stopping=True)
    assert state.active and state.exit_action == "exit"


def test_reboot_command_exit_codes(tmp_path):
    assert drain.reboot([sys.executable, "-c", "pass"]) == 0
    assert drain.reboot([sys.executable, "-c", "raise SystemExit(3)"]) == 1
    assert drain.reboot([str(tmp_path / "no-such-command")]) == 1
