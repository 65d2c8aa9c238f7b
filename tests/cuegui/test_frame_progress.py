"""The frames view shows a running frame's progress: a bar with its percentage in the Progress
column, drawn offscreen; and live, from a frame a real rqd runs for a real supervisor."""

from __future__ import annotations

import sys

from qtpy.QtGui import QColor
from qtpy.QtWidgets import QApplication

from cuegui import theme
from cuegui.models import SortRole
from cuegui.models.frames import FramesModel
from cuegui.views.frames import FramesView
from tests import rows
from tests.cuegui.helpers import wait
from tests.cuegui import test_live
from tests.cuegui.test_live import select_job

live = test_live.live       # the fixture: a window on a real supervisor with two rqd workers

PY = sys.executable


def near(pixel: int, colour: str, tolerance: int = 40) -> bool:
    c, want = QColor.fromRgb(pixel), QColor(colour)
    return all(abs(a - b) <= tolerance for a, b in ((c.red(), want.red()),
                                                   (c.green(), want.green()),
                                                   (c.blue(), want.blue())))


def cell_pixels(view: FramesView, image, row: int, col: str,
                tenths: tuple[int, ...] = (1, 9)) -> tuple[int, ...]:
    """Pixels of a cell's bar at these tenths of its width, at mid-height (away from the
    centred text)."""
    model = view.table_model()
    rect = view.visualRect(model.index(row, model.column_index(col)))
    top = view.viewport().mapTo(view, rect.topLeft())
    y = top.y() + rect.height() // 2
    xs = [top.x() + 4 + (rect.width() - 8) * f // 10 for f in tenths]
    return tuple(image.pixel(x, y) for x in xs)


def test_the_progress_column_draws_a_bar_for_running_frames(qtbot, tmp_path):
    model = FramesModel()
    view = FramesView(model)
    qtbot.addWidget(view)
    view.resize(1100, 220)
    model.show_job(1, [
        rows.frame(1, state="RUNNING", host="render01", attempt=1, attempt_id="1.1",
                   attempt_state="RUNNING", started_at=rows.NOW - 30, progress=45),
        rows.frame(2, state="RUNNING", host="render02", attempt=1, attempt_id="2.1",
                   attempt_state="RUNNING", started_at=rows.NOW - 5),     # printed none yet
        rows.frame(3, state="SUCCEEDED", host="render01", attempt=1, attempt_id="3.1",
                   attempt_state="SUCCEEDED", started_at=rows.NOW - 90,
                   stopped_at=rows.NOW - 60, runtime=30.0, exit_status=0, progress=100),
        rows.frame(4, state="DEAD", host="render02", attempt=1, attempt_id="4.1",
                   attempt_state="FAILED", started_at=rows.NOW - 90, stopped_at=rows.NOW - 80,
                   runtime=10.0, exit_status=1, progress=60),
    ])
    view.show()
    wait(qtbot, lambda: model.rowCount() == 4)
    col = model.column_index("progress")
    texts = [model.index(r, col).data() for r in range(4)]
    assert texts == ["45%", "", "", ""]        # only a running frame's is shown
    assert [model.index(r, col).data(SortRole) for r in range(4)] == [45, None, None, None]

    QApplication.processEvents()
    image = view.grab().toImage()
    assert image.save(str(tmp_path / "frames-progress.png"))
    running = theme.FRAME_COLORS["RUNNING"]
    trough = theme.chrome("TROUGH")
    left, right = cell_pixels(view, image, 0, "progress")
    assert near(left, running)                 # 45%: the left of the bar is filled...
    assert near(right, trough)                 # ...the right is the trough
    # The frame without progress gets no bar: the cell is the view's own background.
    blank = cell_pixels(view, image, 1, "progress", (1, 5, 9))
    assert not any(near(p, running, 20) for p in blank)

    # The bar follows the row: 90% fills nine tenths.
    model.apply([dict(model.get(1), progress=90)])
    QApplication.processEvents()
    image = view.grab().toImage()
    assert all(near(p, running) for p in cell_pixels(view, image, 0, "progress", (1, 2, 8)))


def test_the_frames_view_shows_the_progress_a_running_frame_prints(qtbot, live, tmp_path):
    farm, win = live
    go = tmp_path / "go"
    script = ("import os, time\nprint('PROGRESS 40%', flush=True)\n"
              f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n")
    [job_id] = farm.client().submit([{"name": "progress", "project": "gui", "layers": [
        {"name": "render", "command": [PY, "-c", script], "range": "1-2"}]}])
    select_job(qtbot, win, job_id)
    model = win.frames_model
    col = model.column_index("progress")

    def shown() -> list[str]:
        return [model.index(r, col).data() for r in range(model.rowCount())]
    try:
        wait(qtbot, lambda: shown() == ["40%", "40%"], timeout=60_000)
        win.frames_panel.grab().save(str(tmp_path / "frames-live.png"))
    finally:
        go.touch()
    wait(qtbot, lambda: [f["state"] for f in model.rows()] == ["SUCCEEDED"] * 2,
         timeout=60_000)
    assert shown() == ["", ""]
    assert [f["progress"] for f in model.rows()] == [100, 100]
