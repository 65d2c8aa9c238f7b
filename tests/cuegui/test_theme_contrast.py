"""Every text colour against what it is drawn on reaches WCAG contrast 4.5, in both themes."""

from __future__ import annotations

import pytest
from qtpy.QtGui import QPalette
from qtpy.QtWidgets import QApplication

from cuegui import theme

TEXT = theme.MIN_CONTRAST


@pytest.fixture(params=theme.THEMES)
def look(request, qapp):
    theme.apply(qapp, request.param)
    yield request.param
    theme.apply_dark(QApplication.instance())


def palette(name: str) -> dict:
    return theme.DARK if name == "dark" else theme.LIGHT


def test_contrast_ratio_matches_wcag():
    assert theme.contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert theme.contrast("#777777", "#777777") == pytest.approx(1.0)
    assert theme.contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


@pytest.mark.parametrize("table", ["FRAME_COLORS", "JOB_COLORS", "PROGRESS_COLORS",
                                   "HOST_COLORS", "LOCK_COLORS"])
def test_text_on_every_state_fill_reads(look, table):
    """Pills and progress segments: the text chosen for each fill."""
    for state, fill in getattr(theme, table).items():
        assert theme.contrast(theme.text_on(fill), fill) >= TEXT, (look, state, fill)
    trough = theme.chrome("TROUGH")
    assert theme.contrast(theme.text_on(trough), trough) >= TEXT


def test_state_coloured_text_reads_on_the_window_and_tables(look):
    """The frame-state toggles (text in the state's colour) and state text in tables."""
    pal = palette(look)
    for background in (pal[QPalette.ColorRole.Window], pal[QPalette.ColorRole.Base],
                       pal[QPalette.ColorRole.Button]):
        for state in theme.FRAME_COLORS:
            text = theme.state_text(theme.FRAME_COLORS, state, background)
            assert theme.contrast(text, background) >= TEXT, (look, state, background)
    for state in theme.FRAME_COLORS:       # the window's own background, as the panel uses
        text = theme.state_text(theme.FRAME_COLORS, state)
        assert theme.contrast(text, pal[QPalette.ColorRole.Window]) >= TEXT


def test_state_text_keeps_the_hue():
    """Made readable, a state's text still reads as its colour (yellow stays yellow)."""
    for name in theme.THEMES:
        bg = palette(name)[QPalette.ColorRole.Window]
        original = theme.color(theme.FRAME_COLORS, "RUNNING")
        shown = theme.readable(original.name(), bg)
        assert abs(shown.hsvHue() - original.hsvHue()) <= 6


def test_table_text_reads_on_rows_and_selection(look):
    pal = palette(look)
    base, alt = pal[QPalette.ColorRole.Base], pal[QPalette.ColorRole.AlternateBase]
    selection = theme.chrome("SELECTION")
    assert pal[QPalette.ColorRole.Highlight] == selection
    for bg in (base, alt):
        assert theme.contrast(pal[QPalette.ColorRole.Text], bg) >= TEXT
        assert theme.contrast(theme.dim_text(), bg) >= TEXT          # finished jobs
        assert theme.contrast(theme.dead_text(), bg) >= TEXT         # dead counts
    assert theme.contrast(pal[QPalette.ColorRole.HighlightedText], selection) >= TEXT
    # Dimmed rows stay legible when selected (3: WCAG's floor for secondary text).
    assert theme.contrast(theme.dim_text(), selection) >= 3.0


def test_chart_and_caption_text_reads(look):
    assert theme.contrast(theme.chrome("PLOT_FG"), theme.chrome("PLOT_BG")) >= TEXT
    assert theme.contrast(theme.chrome("CAPTION"), palette(look)[QPalette.ColorRole.Window]) \
        >= TEXT
    assert theme.contrast(theme.chrome("LOG_FG"), theme.chrome("LOG_BG")) >= TEXT
    assert theme.contrast(theme.chrome("HEADER_FG"), theme.chrome("HEADER_BG")) >= TEXT
