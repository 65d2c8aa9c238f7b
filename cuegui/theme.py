"""Look: dark (default) and light Fusion palettes, state colours, SVG icons, the stylesheet,
and sizes derived from the font so the GUI reads the same on an HD and a 4K screen.

State colours follow the ones OpenCue users already read at a glance (waiting light blue,
running yellow, succeeded green, dead red, eaten dark red, depend purple), toned for a dark
background.
"""

from __future__ import annotations

import functools
import logging
import importlib.util
import os
from pathlib import Path

from qtpy.QtGui import QColor, QIcon, QPalette
from qtpy.QtWidgets import QApplication

log = logging.getLogger(__name__)

FRAME_COLORS = {
    "WAITING": "#5fa8e0",
    "DEPEND": "#a57de0",
    "RUNNING": "#e8c547",
    "SUCCEEDED": "#4cb860",
    "DEAD": "#e5534b",
    "EATEN": "#a65252",
}
JOB_COLORS = {
    "running": "#e8c547",
    "waiting": "#5fa8e0",
    "paused": "#8b95a1",
    "failing": "#e5534b",
    "dependency": "#a57de0",
    "finished": "#4cb860",
    "killed": "#8e4a4a",
    "flagged": "#e8743c",     # paused by the supervisor itself (Job.flagged says why)
}
# States whose pill carries an icon before the text.
JOB_ICONS = {"flagged": "flag"}
HOST_COLORS = {"UP": "#4cb860", "DOWN": "#e5534b"}
LOCK_COLORS = {"OPEN": "#8b95a1", "LOCKED": "#e89a3c"}
CONNECTION_COLORS = {"connected": "#4cb860", "connecting": "#8b95a1",
                     "reconnecting": "#e8c547", "unreachable": "#e5534b"}

# Segments of the job progress bar, in drawing order.
PROGRESS_COLORS = {
    "succeeded": FRAME_COLORS["SUCCEEDED"],
    "eaten": FRAME_COLORS["EATEN"],
    "dead": FRAME_COLORS["DEAD"],
    "running": FRAME_COLORS["RUNNING"],
}
PROGRESS_TROUGH = "#2b3038"
# One colour per project in the stacked charts.
PROJECT_COLOURS = ["#5fa8e0", "#e8c547", "#4cb860", "#e5534b", "#a57de0", "#e89a3c",
                   "#4fc1c9", "#d36fb0", "#9cb84c", "#c9925f"]

# Colours of the chrome that the palette does not cover, per theme; the stylesheet's @NAME@
# placeholders are filled from these.
CHROME = {
    "dark": {"DOCK_TITLE": "#2b2f35", "CAPTION": "#9aa4b1", "HEADER_BG": "#2a2e34",
             "HEADER_FG": "#c4cad3", "BORDER": "#1d2024", "LOG_BG": "#15171a",
             "LOG_FG": "#cfd6de", "SELECTION": "#22446a", "TROUGH": "#2b3038",
             "ERROR_FIELD": "#ff7b72", "MATCH": "#6b5a1e", "CURRENT_MATCH": "#b8862b",
             "PLOT_BG": "#1b1d21", "PLOT_FG": "#aab2bd", "GRAPH_EDGE": "#8b95a1",
             "DIM": "#9aa3ad"},
    "light": {"DOCK_TITLE": "#dde1e6", "CAPTION": "#4b5563", "HEADER_BG": "#e6e9ed",
              "HEADER_FG": "#2d333b", "BORDER": "#c3c8cf", "LOG_BG": "#fbfbfc",
              "LOG_FG": "#1f2328", "SELECTION": "#b3d3f2", "TROUGH": "#d5d9df",
              "ERROR_FIELD": "#c62828", "MATCH": "#ffe58f", "CURRENT_MATCH": "#ffb347",
              "PLOT_BG": "#ffffff", "PLOT_FG": "#3d4450", "GRAPH_EDGE": "#57606a",
              "DIM": "#4f5761"},
}
LIGHT = {
    QPalette.ColorRole.Window: "#eef0f3",
    QPalette.ColorRole.WindowText: "#1f2328",
    QPalette.ColorRole.Base: "#ffffff",
    QPalette.ColorRole.AlternateBase: "#f4f6f8",
    QPalette.ColorRole.ToolTipBase: "#ffffe8",
    QPalette.ColorRole.ToolTipText: "#1f2328",
    QPalette.ColorRole.PlaceholderText: "#8c959f",
    QPalette.ColorRole.Text: "#1f2328",
    QPalette.ColorRole.Button: "#e4e7eb",
    QPalette.ColorRole.ButtonText: "#1f2328",
    QPalette.ColorRole.BrightText: "#c62828",
    QPalette.ColorRole.Light: "#ffffff",
    QPalette.ColorRole.Midlight: "#f0f2f4",
    QPalette.ColorRole.Mid: "#c3c8cf",
    QPalette.ColorRole.Dark: "#9aa2ad",
    QPalette.ColorRole.Shadow: "#6e7681",
    QPalette.ColorRole.Highlight: "#b3d3f2",      # = CHROME SELECTION, under dark text
    QPalette.ColorRole.HighlightedText: "#1f2328",
    QPalette.ColorRole.Link: "#0969da",
    QPalette.ColorRole.LinkVisited: "#8250df",
}
LIGHT_DISABLED = {
    QPalette.ColorRole.WindowText: "#9aa2ad",
    QPalette.ColorRole.Text: "#9aa2ad",
    QPalette.ColorRole.ButtonText: "#9aa2ad",
    QPalette.ColorRole.Highlight: "#d0d5db",
    QPalette.ColorRole.HighlightedText: "#57606a",
}
THEMES = ("dark", "light")
current = "dark"

DARK = {
    QPalette.ColorRole.Window: "#24272c",
    QPalette.ColorRole.WindowText: "#d8dce2",
    QPalette.ColorRole.Base: "#1b1d21",
    QPalette.ColorRole.AlternateBase: "#212429",
    QPalette.ColorRole.ToolTipBase: "#30343b",
    QPalette.ColorRole.ToolTipText: "#e6e9ed",
    QPalette.ColorRole.PlaceholderText: "#6e7681",
    QPalette.ColorRole.Text: "#d8dce2",
    QPalette.ColorRole.Button: "#2e3238",
    QPalette.ColorRole.ButtonText: "#d8dce2",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Light: "#3a3f46",
    QPalette.ColorRole.Midlight: "#33373e",
    QPalette.ColorRole.Mid: "#2a2d33",
    QPalette.ColorRole.Dark: "#16181b",
    QPalette.ColorRole.Shadow: "#0d0e10",
    QPalette.ColorRole.Highlight: "#22446a",      # = CHROME SELECTION
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6cb2ff",
    QPalette.ColorRole.LinkVisited: "#b08cff",
}
DISABLED = {
    QPalette.ColorRole.WindowText: "#6e7681",
    QPalette.ColorRole.Text: "#6e7681",
    QPalette.ColorRole.ButtonText: "#6e7681",
    QPalette.ColorRole.Highlight: "#3a3f46",
    QPalette.ColorRole.HighlightedText: "#9aa2ad",
}


def resources_dir() -> Path:
    """Where icons and the stylesheet live: CUEGUI_RESOURCES, else the cuegui.resources
    package (resources/ of the source tree, shipped in the wheel as cuegui.resources).

    The package's directory comes from its import spec, which names real directories
    whether the package is installed, editable or a namespace package (the `str()` of what
    importlib.resources.files() returns is not a path for a namespace package)."""
    env = os.environ.get("CUEGUI_RESOURCES")
    if env:
        return Path(env)
    try:
        spec = importlib.util.find_spec("cuegui.resources")
    except ModuleNotFoundError:
        spec = None
    for place in (spec.submodule_search_locations or []) if spec is not None else []:
        if (Path(place) / "icons").is_dir():
            return Path(place)
    return Path(__file__).resolve().parent.parent / "resources"


def color(table: dict[str, str], state: str | None, fallback: str = "#8b95a1") -> QColor:
    """The QColor for a state from one of the tables above."""
    return QColor(table.get(state or "", fallback))


TEXT_DARK, TEXT_LIGHT = "#15171a", "#f2f4f7"
MIN_CONTRAST = 4.5          # WCAG AA for normal text


def luminance(c: QColor | str) -> float:
    """WCAG relative luminance of a colour."""
    c = QColor(c)

    def lin(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4
    return 0.2126 * lin(c.redF()) + 0.7152 * lin(c.greenF()) + 0.0722 * lin(c.blueF())


def contrast(a: QColor | str, b: QColor | str) -> float:
    """WCAG contrast ratio of two colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_on(fill: QColor | str) -> QColor:
    """Near-black or near-white text, whichever has the higher contrast on `fill`."""
    dark, light = QColor(TEXT_DARK), QColor(TEXT_LIGHT)
    return dark if contrast(dark, fill) >= contrast(light, fill) else light


@functools.lru_cache(maxsize=None)
def _readable(colour: str, background: str, ratio: float) -> str:
    c, bg = QColor(colour), QColor(background)
    lighten = luminance(bg) < 0.18          # on a dark background go lighter, else darker
    h, s, v, a = c.getHsvF()
    for _ in range(60):
        if contrast(c, bg) >= ratio:
            break
        if lighten:
            s, v = max(0.0, s - 0.02), min(1.0, v + 0.03)
        else:
            v = max(0.0, v - 0.03)
        c = QColor.fromHsvF(h if h >= 0 else 0.0, s, v, a)
    return c.name()


def readable(colour: str, background: str | None = None, ratio: float = MIN_CONTRAST) -> QColor:
    """`colour`, lightened (on a dark background) or darkened (on a light one) until it reads
    as text on `background` (the theme's window colour by default) with WCAG contrast
    `ratio`: the hue stays, so a state keeps its colour in text."""
    if background is None:
        background = window_colour()
    return QColor(_readable(QColor(colour).name(), QColor(background).name(), ratio))


def state_text(table: dict[str, str], state: str | None, background: str | None = None) -> QColor:
    """A state's colour for text (not fills) in the current theme."""
    return readable(table.get(state or "", "#8b95a1"), background)


def window_colour() -> str:
    return (DARK if current == "dark" else LIGHT)[QPalette.ColorRole.Window]


def base_colour() -> str:
    return (DARK if current == "dark" else LIGHT)[QPalette.ColorRole.Base]


def dim_text() -> QColor:
    """Text of rows that matter less (finished jobs, down hosts): quieter than the normal
    text, still readable on the row and on the selection."""
    return QColor(CHROME[current]["DIM"])


def dead_text() -> QColor:
    """A count of dead frames in a table cell."""
    pal = DARK if current == "dark" else LIGHT
    once = state_text(FRAME_COLORS, "DEAD", base_colour())
    return readable(once.name(), pal[QPalette.ColorRole.AlternateBase])   # striped rows too


# The neutral stroke of the icons is drawn for a dark background; the light theme gets a
# darker copy so the icons keep their contrast.
ICON_NEUTRAL = "#c9d1d9"
ICON_NEUTRAL_LIGHT = "#3d4450"


def _light_icon_dir() -> Path:
    import tempfile
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"cuegui-icons-light-{uid}"


@functools.lru_cache(maxsize=None)
def _icon(name: str, theme_name: str) -> QIcon:
    path = resources_dir() / "icons" / f"{name}.svg"
    if not path.is_file():
        log.debug("icon %s not found at %s", name, path)
        return QIcon()
    if theme_name == "light":
        text = path.read_text()
        if ICON_NEUTRAL in text:
            target = _light_icon_dir() / path.name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text.replace(ICON_NEUTRAL, ICON_NEUTRAL_LIGHT))
                path = target
            except OSError:
                pass          # the dark one will do
    return QIcon(str(path))


def icon(name: str) -> QIcon:
    """The SVG icon `name` from resources/icons for the current theme (empty when missing)."""
    return _icon(name, current)


def chrome(name: str) -> str:
    """A chrome colour of the current theme (see CHROME)."""
    return CHROME[current][name]


def apply(app: QApplication, name: str = "dark") -> None:
    """Fusion style with the `name` palette ("dark" or "light") and resources/cuegui.qss."""
    global current
    current = name if name in THEMES else "dark"
    # Each of these re-polishes every widget alive, so only what changed is set again.
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    normal, disabled = (DARK, DISABLED) if current == "dark" else (LIGHT, LIGHT_DISABLED)
    pal = QPalette()
    for role, value in normal.items():
        pal.setColor(QPalette.ColorGroup.All, role, QColor(value))
    for role, value in disabled.items():
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(value))
    if app.palette() != pal:
        app.setPalette(pal)
    qss = resources_dir() / "cuegui.qss"
    if qss.is_file():
        text = qss.read_text().replace("@ICONS@", (resources_dir() / "icons").as_posix())
        for key, value in CHROME[current].items():
            text = text.replace(f"@{key}@", value)
        if app.styleSheet() != text:
            app.setStyleSheet(text)
    app.setWindowIcon(icon("cuegui"))


def apply_dark(app: QApplication) -> None:
    """The default look."""
    apply(app, "dark")


def line_height(widget=None) -> int:
    """The height of a line of text in `widget`'s font (the application font by default)."""
    from qtpy.QtGui import QFontMetrics
    font = widget.font() if widget is not None else QApplication.font()
    return QFontMetrics(font).height()


def scaled(pixels: float, widget=None) -> int:
    """`pixels` at a 16-pixel line height, scaled to the font actually in use."""
    return max(1, round(pixels * line_height(widget) / 16.0))
