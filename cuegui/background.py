"""Long work on the UI thread, a few milliseconds per turn of the event loop.

Work is written as a generator that yields every so often; `Stepper` runs it in slices and
hands its return value to a callback.  (A helper thread is no better in a PySide program:
every Qt callback into Python, thousands per repaint, would queue for the GIL.)
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Generator

from qtpy.QtCore import QObject, QTimer

log = logging.getLogger(__name__)

SLICE_SECONDS = 0.008


class Stepper(QObject):
    """`start(steps)` runs a generator in slices and calls `on_result(value)` when it returns;
    a newer start() replaces work still under way."""

    def __init__(self, on_result: Callable[[Any], None], parent=None):
        super().__init__(parent)
        self.on_result = on_result
        self._steps: Generator | None = None
        self._timer = QTimer(self, interval=0)
        self._timer.timeout.connect(self._step)

    @property
    def busy(self) -> bool:
        return self._steps is not None

    def start(self, steps: Generator) -> None:
        self._steps = steps
        self._timer.start()

    def finish(self) -> None:
        """Run the work under way to the end now."""
        while self._steps is not None:
            self._step()

    def _step(self) -> None:
        steps = self._steps
        if steps is None:
            self._timer.stop()
            return
        deadline = time.perf_counter() + SLICE_SECONDS
        try:
            while time.perf_counter() < deadline:
                next(steps)
        except StopIteration as done:
            self._steps = None
            self._timer.stop()
            self.on_result(done.value)
        except Exception:  # noqa: BLE001 - logged; the old result stays shown
            log.exception("background work failed")
            self._steps = None
            self._timer.stop()
