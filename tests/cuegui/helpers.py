"""Waiting in the GUI tests: Qt keeps processing events while a test waits for a condition."""

from __future__ import annotations

WAIT = 10_000       # ms: long enough for a window on a simulated supervisor


def wait(qtbot, predicate, timeout: int = WAIT) -> None:
    """Process Qt events until `predicate()` is truthy; fail the test after `timeout` ms."""
    qtbot.waitUntil(lambda: bool(predicate()), timeout=timeout)
