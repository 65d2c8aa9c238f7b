"""Qt runs offscreen in these tests; the platform must be chosen before a QApplication exists."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QT_API", "pyside6")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _dark_app(qapp):
    """Every test runs under the application's real look (Fusion, dark palette, stylesheet)."""
    from cuegui import theme
    theme.apply_dark(qapp)
    yield
