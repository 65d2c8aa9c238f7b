"""Output preview: a layer's `outputs` pattern filled in per frame, a thumbnail of a real PNG
written by a frame on a real worker, and words (never an exception) for what is missing."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

import pytest
from qtpy.QtCore import Qt
from qtpy.QtGui import QColor, QImage

from cuefarm.pathmap import parse_rule
from cuefarm.spec import SpecError, validate_job
from cuegui.connection import Connection
from cuegui.models.outputs import frame_outputs, frame_path
from cuegui.views.preview import ImageViewer, PreviewPanel
from cuegui.window import MainWindow
from tests import rows
from tests.cuegui.test_live import wait

PY = sys.executable


def png(path, w=320, h=200, colour="#3080c0"):
    image = QImage(w, h, QImage.Format.Format_RGB32)
    image.fill(QColor(colour))
    assert image.save(str(path))
    return path


def test_frame_paths_from_patterns():
    assert frame_path("/out/sh010.####.png", 7) == "/out/sh010.0007.png"
    assert frame_path("/out/a_#.exr", 12) == "/out/a_12.exr"
    assert frame_path("/out/b.%04d.tif", 3) == "/out/b.0003.tif"
    assert frame_path("/out/c.%d.jpg", 3) == "/out/c.3.jpg"
    assert frame_path("/out/#FRAME#/d.#ZFRAME#.png", 5) == "/out/5/d.0005.png"
    layer = rows.layer(1, outputs=["/show/out.####.png", "/show/depth.####.exr"])
    frame = rows.frame(4, frame_start=4, frame_end=6)
    assert frame_outputs(layer, frame) == ["/show/out.0004.png", "/show/depth.0004.exr"]
    assert frame_outputs(rows.layer(1), frame) == []
    rules = [parse_rule("/show=/mnt/show")]
    assert frame_outputs(layer, frame, rules)[0] == "/mnt/show/out.0004.png"


def test_outputs_in_the_job_spec():
    job = {"name": "j", "layers": [{"name": "r", "command": "x", "range": "1",
                                    "outputs": "/out/r.####.png"}]}
    assert validate_job(job).layers[0].outputs == ["/out/r.####.png"]
    for bad, says in ((5, "list of file paths"), ([""], "file path"),
                      (["/a"] * 17, "at most 16")):
        job["layers"][0]["outputs"] = bad
        with pytest.raises(SpecError, match=says):
            validate_job(job)


def read(qtbot, panel):
    """Wait for the panel's read of the file (on its helper thread) to be shown."""
    wait(qtbot, lambda: not panel.pending)
    return panel.text()


def test_the_preview_says_what_stands_in_the_way(qtbot, tmp_path):
    panel = PreviewPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.text() == "Select a frame to see its image."
    layer = rows.layer(1, name="render", outputs=[str(tmp_path / "out.####.png")])
    panel.show_frame(rows.frame(2, layer="render", state="RUNNING"), rows.layer(1, name="render"))
    assert "names no outputs" in panel.text()
    panel.show_frame(rows.frame(2, layer="render", state="RUNNING"), layer)
    assert read(qtbot, panel) == f"not written yet: {tmp_path / 'out.0002.png'}"
    panel.show_frame(rows.frame(2, layer="render", state="SUCCEEDED"), layer)
    assert read(qtbot, panel) == f"not found: {tmp_path / 'out.0002.png'}"
    assert not panel.view_button.isEnabled()
    (tmp_path / "out.0002.png").write_bytes(b"not an image at all")
    panel.show_frame(rows.frame(2, layer="render", state="SUCCEEDED"), layer)
    assert read(qtbot, panel).startswith(f"cannot read {tmp_path / 'out.0002.png'}")
    # The frame finishes and writes its image: the preview looks again.
    panel.show_frame(rows.frame(3, layer="render", state="RUNNING"), layer)
    assert read(qtbot, panel).startswith("not written yet")
    png(tmp_path / "out.0003.png")
    panel.update_frame(rows.frame(3, layer="render", state="SUCCEEDED"))
    assert read(qtbot, panel) == str(tmp_path / "out.0003.png")
    assert panel.image is not None and not panel.picture.pixmap().isNull()
    assert panel.view_button.isEnabled()


def test_only_the_latest_read_is_shown(qtbot, tmp_path):
    """Frames picked one after another: an older read finishing late never replaces the
    frame shown."""
    panel = PreviewPanel()
    qtbot.addWidget(panel)
    for n in (1, 2):
        png(tmp_path / f"o.000{n}.png", 40 * n, 30)
    layer = rows.layer(1, outputs=[str(tmp_path / "o.####.png")])
    panel.show_frame(rows.frame(1, state="SUCCEEDED"), layer)
    panel.show_frame(rows.frame(2, state="SUCCEEDED"), layer)
    assert read(qtbot, panel) == str(tmp_path / "o.0002.png")
    qtbot.wait(100)
    assert panel.image.width() == 80 and panel.text() == str(tmp_path / "o.0002.png")


def test_exr_without_a_reader_is_said(qtbot, tmp_path):
    if importlib.util.find_spec("OpenImageIO") or importlib.util.find_spec("imageio"):
        pytest.skip("an EXR reader is installed here")
    panel = PreviewPanel()
    qtbot.addWidget(panel)
    (tmp_path / "beauty.0001.exr").write_bytes(b"v/1\x01")
    panel.show_frame(rows.frame(1, state="SUCCEEDED"),
                     rows.layer(1, outputs=[str(tmp_path / "beauty.####.exr")]))
    assert "EXR preview needs OpenImageIO or imageio" in read(qtbot, panel)


def test_the_viewer_fits_and_shows_one_to_one(qtbot, tmp_path):
    path = png(tmp_path / "big.png", 2400, 1600)
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    assert viewer.show_path(str(path))
    assert viewer.fit and viewer.zoom() < 0.5
    assert "2400x1600" in viewer.zoom_label.text()
    qtbot.mouseClick(viewer.one_button, Qt.MouseButton.LeftButton)
    assert not viewer.fit and viewer.zoom() == 1.0
    assert viewer.area.horizontalScrollBar().maximum() > 0
    assert not viewer.show_path(str(tmp_path / "gone.png"))
    assert viewer.picture.text() == f"not found: {tmp_path / 'gone.png'}"


WRITE_PNG = textwrap.dedent("""
    import struct, sys, zlib
    frame, pattern = int(sys.argv[1]), sys.argv[2]
    w, h = 96, 64
    rows = b"".join(
        b"\\x00" + b"".join(bytes([(x * 2) % 256, (y * 4) % 256, (40 * frame) % 256])
                           for x in range(w)) for y in range(h))
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    png = (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    open(pattern.replace("####", "%04d" % frame), "wb").write(png)
    print("wrote frame", frame)
""")


def test_a_frame_written_by_a_worker_shows_in_the_window(qtbot, sqlite_farm, tmp_path):
    farm = sqlite_farm
    script = tmp_path / "write_png.py"
    script.write_text(WRITE_PNG)
    pattern = str(tmp_path / "beauty.####.png")
    farm.start_rqd("render01", 2)
    farm.wait_hosts_up(["render01"])
    client = farm.client()
    [job_id] = client.submit({"name": "pictures", "layers": [
        {"name": "beauty", "command": [PY, str(script), "#FRAME#", pattern], "range": "1-2",
         "outputs": [pattern]}]})
    client.wait(job_id, timeout=60)
    assert client.layers(job_id)[0]["outputs"] == [pattern]
    conn = Connection(farm.address, idle_ping=1.0)
    win = MainWindow(conn, mode="admin")
    qtbot.addWidget(win)
    win.show()
    conn.start()
    try:
        wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
        win.jobs_panel.mine.setChecked(False)
        wait(qtbot, lambda: win.jobs_view.select_id(job_id))
        wait(qtbot, lambda: win.frames_model.rowCount() == 2 and win.layers_model.rowCount())
        frame = next(f for f in win.frames_model.all_rows() if f["frame_start"] == 2)
        win.frames_view.select_id(frame["id"])
        wait(qtbot, lambda: win.preview_panel.image is not None)
        panel = win.preview_panel
        assert read(qtbot, panel) == pattern.replace("####", "0002")
        assert (panel.image.width(), panel.image.height()) == (96, 64)
        assert panel.image.pixelColor(10, 10) == QColor(20, 40, 80)
        assert "beauty frame 2" in panel.caption.text()
        viewer = panel.open_viewer()
        assert viewer is not None and viewer.image.width() == 96
        viewer.close()
    finally:
        win.close()


def test_fit_enlarges_a_small_image(qtbot, tmp_path):
    viewer = ImageViewer()
    qtbot.addWidget(viewer)
    viewer.resize(800, 600)
    viewer.show()
    assert viewer.show_path(str(png(tmp_path / "small.png", 96, 64)))
    assert viewer.zoom() > 4
    viewer.set_fit(False)
    assert viewer.zoom() == 1.0


def test_previews_use_this_machines_path_maps(tmp_path):
    from cuegui.views.preview import machine_path_rules
    good = tmp_path / "good.toml"
    good.write_text('[rqd]\npath_maps = ["/show=/mnt/show"]\n')
    [rule] = machine_path_rules([good], environ={})
    layer = rows.layer(1, outputs=["/show/out.####.png"])
    assert frame_outputs(layer, rows.frame(3), [rule]) == ["/mnt/show/out.0003.png"]
    bad = tmp_path / "bad.toml"
    bad.write_text('[rqd]\npath_maps = ["no equals sign"]\n')
    assert machine_path_rules([bad], environ={}) == []
    assert machine_path_rules([tmp_path / "none.toml"], environ={}) == []


def test_a_long_path_wraps_and_never_widens_the_panel(qtbot, tmp_path):
    panel = PreviewPanel()
    qtbot.addWidget(panel)
    panel.resize(300, 260)
    panel.show()
    deep = "/".join(["a_rather_long_directory_name"] * 12)
    layer = rows.layer(1, outputs=[f"/{deep}/out.####.png"])
    panel.show_frame(rows.frame(1, state="RUNNING"), layer)
    assert read(qtbot, panel) == f"not written yet: /{deep}/out.0001.png"
    qtbot.wait(50)
    assert panel.width() == 300 and panel.minimumSizeHint().width() <= 300
    assert panel.message.height() > panel.message.fontMetrics().height() * 2
