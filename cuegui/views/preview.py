"""Output preview: a thumbnail of the selected frame's image, and a viewer (fit, 1:1).

The paths come from the frame's layer (`outputs`, see cuegui.models.outputs).  Qt reads PNG,
JPEG and TIFF; EXR is read only when OpenImageIO or imageio can be imported.  Whatever stands
in the way (no outputs named, a file not written yet or gone, a format nothing here reads)
is said in words under the picture, never raised.  The thumbnail is read on a helper thread
(a file on a busy file server may take a while; the window does not wait for it).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QImage, QImageReader, QPixmap
from qtpy.QtWidgets import (QComboBox, QDialog, QHBoxLayout, QLabel, QPushButton, QScrollArea,
                            QSizePolicy, QToolButton, QVBoxLayout, QWidget)

from cuegui import theme
from cuegui.models.outputs import frame_outputs

log = logging.getLogger(__name__)

THUMB = 160           # the thumbnail's longer side, at a 16-pixel line height
DONE = ("SUCCEEDED", "EATEN")


def _float_image(pixels: Any) -> QImage:
    """A float or integer array (height, width, channels) as an 8-bit QImage (no colour
    management: a preview, not a grade)."""
    import numpy as np
    arr = np.asarray(pixels)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    arr = arr[:, :, :3]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype.kind == "f":
        # Linear light to a display curve, roughly sRGB.
        arr = np.clip(np.nan_to_num(arr), 0.0, 1.0) ** (1 / 2.2) * 255.0
    elif arr.dtype.itemsize > 1:
        arr = arr / float(np.iinfo(arr.dtype).max) * 255.0
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    h, w, _ = arr.shape
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _read_exr(path: str) -> tuple[QImage | None, str]:
    try:
        import OpenImageIO as oiio  # type: ignore[import-not-found]
    except ImportError:
        oiio = None
    if oiio is not None:
        buf = oiio.ImageBuf(path)
        if buf.has_error:
            return None, f"cannot read {path}: {buf.geterror()}"
        return _float_image(buf.get_pixels(oiio.FLOAT)), ""
    try:
        import imageio.v3 as iio  # type: ignore[import-not-found]
    except ImportError:
        return None, f"EXR preview needs OpenImageIO or imageio (neither is installed): {path}"
    try:
        return _float_image(iio.imread(path)), ""
    except Exception as exc:  # noqa: BLE001 - any reader failure is said, not raised
        return None, f"cannot read {path}: {exc}"


def read_image(path: str, size: QSize | None = None) -> tuple[QImage | None, str]:
    """(the image, "") or (None, why not).  `size`: read scaled to fit it (a thumbnail of a
    large image costs less read that way, for JPEG at least)."""
    if path.lower().endswith(".exr"):
        image, why = _read_exr(path)
    else:
        reader = QImageReader(path)
        reader.setAutoTransform(True)
        full = reader.size()
        if size is not None and full.isValid() and (full.width() > size.width()
                                                     or full.height() > size.height()):
            reader.setScaledSize(full.scaled(size, Qt.AspectRatioMode.KeepAspectRatio))
        image = reader.read()
        why = "" if not image.isNull() else f"cannot read {path}: {reader.errorString()}"
        image = None if image.isNull() else image
    if image is not None and size is not None and (image.width() > size.width()
                                                    or image.height() > size.height()):
        image = image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
    return image, why


def machine_path_rules(files: list[Path] | None = None,
                       environ: dict[str, str] | None = None) -> list:
    """This machine's path maps: the `path_maps` of its rqd configuration (a workstation that
    renders maps the submitters' paths the same way), [] when there are none or they cannot
    be read (said in the log: a preview is not worth refusing to start over)."""
    from cuefarm import pathmap
    from cuefarm.config import ConfigError, RqdConfig, load
    try:
        return pathmap.parse_rules(load(RqdConfig, "rqd", files=files,
                                        environ=environ).path_maps)
    except (ConfigError, ValueError) as exc:
        log.warning("previews use paths as submitted: %s", exc)
        return []


def missing_text(path: str, state: str | None) -> str:
    """What to say about an image that is not there: a frame that has not finished has not
    written it yet; one that has should have."""
    return f"not found: {path}" if state in DONE else f"not written yet: {path}"


class PreviewPanel(QWidget):
    """The selected frame's image, small; double-click or "View" opens the viewer.
    `rules` are path-map rules for this machine (cuefarm.pathmap)."""

    _read = Signal(int, object, str)     # a read done: its number, the image or None, text

    def __init__(self, rules: Iterable = (), parent: QWidget | None = None):
        super().__init__(parent)
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preview")
        self._reads = 0                  # the number of the latest read asked for
        self.pending = False             # a read is under way
        self._read.connect(self._on_read)
        self.setObjectName("previewPanel")
        self.rules = list(rules)
        self.frame: dict | None = None
        self.layer: dict | None = None
        self.paths: list[str] = []
        self.image: QImage | None = None
        self.viewer: ImageViewer | None = None
        self.caption = QLabel("Preview")
        self.caption.setObjectName("panelCaption")
        self.choice = QComboBox()
        self.choice.setToolTip("Which of the frame's outputs to show")
        self.choice.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.choice.setMinimumContentsLength(12)
        self.choice.currentIndexChanged.connect(lambda _i: self._load())
        self.choice.hide()
        self.view_button = QPushButton("View")
        self.view_button.setToolTip("Open the image in a viewer (fit or 1:1)")
        self.view_button.clicked.connect(self.open_viewer)
        self.picture = QLabel()
        self.picture.setObjectName("previewPicture")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        side = theme.scaled(THUMB, self)
        self.picture.setMinimumSize(side * 4 // 3, side * 3 // 4)
        self.picture.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.message = QLabel()
        self.message.setObjectName("panelCaption")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setContentsMargins(4, 0, 4, 4)
        # A long path wraps at its separators; it never widens the dock.
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self._text = ""
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        top.addWidget(self.caption, 1)
        top.addWidget(self.choice)
        top.addWidget(self.view_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.picture, 1)
        layout.addWidget(self.message)
        self.show_frame(None, None)

    def text(self) -> str:
        """What the panel says under the picture (for tests and the tour)."""
        return self._text

    def show_frame(self, frame: dict | None, layer: dict | None) -> None:
        """Show the image of `frame` (a frame row) of `layer` (its layer row)."""
        self.frame, self.layer = frame, layer
        paths = frame_outputs(layer, frame, self.rules)
        if frame is None:
            self.caption.setText("Preview")
        else:
            self.caption.setText(f"Preview: {frame.get('layer')} frame "
                                 f"{frame.get('frame_start', frame.get('number'))}")
        if paths != self.paths:
            self.paths = paths
            self.choice.blockSignals(True)
            self.choice.clear()
            for p in paths:
                self.choice.addItem(os.path.basename(p) or p, p)
            self.choice.blockSignals(False)
            self.choice.setVisible(len(paths) > 1)
        self._load()

    def update_frame(self, frame: dict | None) -> None:
        """The shown frame's row changed: look again once its state changes (a frame that
        finished has written its image)."""
        if (frame is not None and self.frame is not None and frame.get("id") == self.frame.get("id")
                and frame.get("state") != self.frame.get("state")):
            self.show_frame(frame, self.layer)

    def current_path(self) -> str | None:
        return self.choice.currentData() if self.paths else None

    def _load(self) -> None:
        self._reads += 1                # a read under way is of no use any more
        self.pending = False
        self.image = None
        self.picture.clear()
        self.view_button.setEnabled(False)
        if self.frame is None:
            self._say("Select a frame to see its image.")
            return
        path = self.current_path()
        if path is None:
            self._say(f"Layer {self.frame.get('layer')} names no outputs: add `outputs` "
                      "(e.g. out.####.png) to it in the job file to preview its frames.")
            return
        self._reads += 1
        number, state = self._reads, self.frame.get("state")
        side = theme.scaled(THUMB, self)
        size = QSize(side * 2, side * 2)
        self.pending = True
        self._say(f"Reading {path}...")

        def read() -> None:
            try:
                if not Path(path).is_file():
                    image, text = None, missing_text(path, state)
                else:
                    image, text = read_image(path, size)
                    text = text or path
            except Exception as exc:  # noqa: BLE001 - said under the picture, never raised
                image, text = None, f"cannot read {path}: {exc}"
            self._read.emit(number, image, text)
        self._reader.submit(read)

    def _on_read(self, number: int, image: QImage | None, text: str) -> None:
        if number != self._reads:
            return                      # an older read: another frame is shown by now
        self.pending = False
        self._say(text)
        if image is None:
            return
        self.image = image
        self._fit_thumbnail()
        self.view_button.setEnabled(True)
        path = self.current_path()
        if self.viewer is not None and self.viewer.isVisible() and path:
            self.viewer.show_path(path)

    def _say(self, text: str) -> None:
        self._text = text
        # Zero-width spaces after separators: places a path may wrap.
        self.message.setText(text.replace("/", "/\u200b").replace("\\", "\\\u200b"))
        self.message.setToolTip(text)

    def _fit_thumbnail(self) -> None:
        if self.image is None:
            return
        size = self.picture.size()
        if size.width() < 8 or size.height() < 8:
            size = self.picture.minimumSize()
        self.picture.setPixmap(QPixmap.fromImage(self.image).scaled(
            size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_thumbnail()

    def mouseDoubleClickEvent(self, event) -> None:
        if self.image is not None:
            self.open_viewer()
        super().mouseDoubleClickEvent(event)

    def open_viewer(self) -> "ImageViewer | None":
        path = self.current_path()
        if path is None or self.image is None:
            return None
        if self.viewer is None:
            self.viewer = ImageViewer(self.window())
        self.viewer.show_path(path)
        self.viewer.show()
        self.viewer.raise_()
        return self.viewer


class ImageViewer(QDialog):
    """One image, zoomed to fit the window (larger or smaller) or shown 1:1 (scroll to
    pan)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("imageViewer")
        self.setWindowTitle("Image")
        self.resize(theme.scaled(900, self), theme.scaled(640, self))
        self.image: QImage | None = None
        self.path = ""
        self.fit = True
        self.fit_button = QToolButton()
        self.fit_button.setText("Fit")
        self.fit_button.setCheckable(True)
        self.fit_button.setToolTip("Zoom the image to fit the window")
        self.one_button = QToolButton()
        self.one_button.setText("1:1")
        self.one_button.setCheckable(True)
        self.one_button.setToolTip("One image pixel per screen pixel")
        self.fit_button.clicked.connect(lambda: self.set_fit(True))
        self.one_button.clicked.connect(lambda: self.set_fit(False))
        self.zoom_label = QLabel()
        self.zoom_label.setObjectName("panelCaption")
        self.path_label = QLabel()
        self.path_label.setObjectName("panelCaption")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.picture = QLabel()
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area = QScrollArea()
        self.area.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.area.setWidget(self.picture)
        bar = QHBoxLayout()
        bar.addWidget(self.fit_button)
        bar.addWidget(self.one_button)
        bar.addWidget(self.zoom_label)
        bar.addWidget(self.path_label, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.area, 1)
        self.set_fit(True)

    def show_path(self, path: str) -> bool:
        """Read and show `path` at full size; False (and the reason shown) if it cannot be."""
        self.path = path
        self.path_label.setText(path)
        self.setWindowTitle(f"Image - {os.path.basename(path)}")
        if not Path(path).is_file():
            image, why = None, f"not found: {path}"
        else:
            image, why = read_image(path)
        self.image = image
        if image is None:
            self.picture.setPixmap(QPixmap())
            self.picture.setText(why)
            self.picture.adjustSize()
            self.zoom_label.setText("")
            return False
        self.picture.setText("")
        self._draw()
        return True

    def set_fit(self, on: bool) -> None:
        self.fit = on
        self.fit_button.setChecked(on)
        self.one_button.setChecked(not on)
        self._draw()

    def zoom(self) -> float:
        """Screen pixels per image pixel as shown."""
        if self.image is None or self.image.isNull():
            return 1.0
        pix = self.picture.pixmap()
        if pix is None or pix.isNull():
            return 1.0
        return pix.width() / self.image.width()

    def _draw(self) -> None:
        if self.image is None:
            return
        pix = QPixmap.fromImage(self.image)
        if self.fit:
            # Fit means the window's size, up as well as down: a small proxy render is
            # looked at, not squinted at.
            room = self.area.viewport().size()
            pix = pix.scaled(room, Qt.AspectRatioMode.KeepAspectRatio,
                             Qt.TransformationMode.SmoothTransformation)
        self.picture.setPixmap(pix)
        self.picture.resize(pix.size())
        self.zoom_label.setText(f"{round(pix.width() / self.image.width() * 100)}%  "
                                f"{self.image.width()}x{self.image.height()}")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self.fit:
            self._draw()
