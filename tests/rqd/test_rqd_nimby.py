"""The idle lock as a table of probe answers on an injected clock, and the probes themselves."""

from __future__ import annotations

import pytest

from rqd import nimby


class Script:
    """A clock and a probe whose answers the test sets step by step."""

    def __init__(self) -> None:
        self.now = 0.0
        self.idle: float | None | Exception = None

    def clock(self) -> float:
        return self.now

    def probe(self) -> float | None:
        if isinstance(self.idle, Exception):
            raise self.idle
        return self.idle


# (clock, probe answer, locked after the update, did it change)
STEPS = [
    (0.0, None, False, False),          # nobody seen yet: open
    (10.0, 0.0, True, True),            # someone types: locked
    (20.0, 5.0, True, False),           # still around (last activity at 15)
    (30.0, None, True, False),          # probe stops answering (logout): the lock holds...
    (74.0, None, True, False),          # ...59 s after the last activity
    (75.0, None, False, True),          # ...and goes at 60 s
    (90.0, 100.0, False, False),        # long idle
    (95.0, 1.0, True, True),            # back
    (96.0, RuntimeError("broken"), True, False),    # a failing probe tells nothing new
    (97.0, float("nan"), True, False),  # nor does nonsense
    (98.0, -5.0, True, False),
    (200.0, 60.0, False, True),         # idle exactly `idle_after`: open
    (201.0, 59.0, True, True),
]


def test_lock_follows_the_probe_and_the_clock():
    s = Script()
    monitor = nimby.NimbyMonitor(s.probe, idle_after=60, clock=s.clock)
    for now, idle, locked, changed in STEPS:
        s.now, s.idle = now, idle
        assert (monitor.update(), monitor.locked) == (changed, locked), (now, idle)


def test_idle_for():
    s = Script()
    monitor = nimby.NimbyMonitor(s.probe, idle_after=60, clock=s.clock)
    monitor.update()
    assert monitor.idle_for() is None
    s.now, s.idle = 100.0, 30.0
    monitor.update()
    s.now = 110.0
    assert monitor.idle_for() == 40.0


@pytest.mark.parametrize("content, want", [("12.5", 12.5), ("0\n", 0.0), ("", None),
                                           ("none", None), ("soon", None), (None, None)])
def test_file_probe(tmp_path, content, want):
    path = tmp_path / "idle"
    if content is not None:
        path.write_text(content)
    assert nimby.file_probe(path)() == want


def test_the_testing_hook_selects_the_file_probe(tmp_path):
    (tmp_path / "idle").write_text("7")
    probe, name = nimby.default_probe({nimby.TEST_IDLE_FILE: str(tmp_path / "idle")})
    assert probe() == 7.0 and "test file" in name


def test_the_default_probes_never_fail():
    probe, name = nimby.default_probe({})
    assert name
    answer = probe()
    assert answer is None or answer >= 0
    assert nimby.users_probe()() in (None, 0.0)
