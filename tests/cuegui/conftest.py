"""Qt runs offscreen in these tests; the platform must be chosen before a QApplication exists."""

from __future__ import annotations

import logging
import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QT_API", "pyside6")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _gui_log(caplog):
    """What the GUI's connection did (lost, resynced, moved on) shows with a failed test."""
    caplog.set_level(logging.INFO, logger="cuegui")


@pytest.fixture(autouse=True)
def _dark_app(qapp):
    """Every test runs under the application's real look (Fusion, dark palette, stylesheet),
    and leaves no window behind: a style or palette change re-polishes every widget alive, so
    windows left over from earlier tests made each theme switch take seconds."""
    from qtpy.QtCore import QCoreApplication, QEvent
    from cuegui import theme
    theme.apply_dark(qapp)
    yield
    for w in qapp.topLevelWidgets():
        w.close()
        w.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
