"""Heartbeat figures (load, memory, disk, per-frame RSS and CPU) written off the loop.

Thousands of hosts report every second or two; writing their rows is a large batch that would
stall dispatch and acknowledgements if it ran on the loop.  A writer thread takes the latest
figures, writes them in one transaction, and hands back what changed for the event stream.
When it falls behind, the older batch is dropped: a newer one supersedes it.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from supervisor.store import hosts as host_store
from supervisor.store import work

log = logging.getLogger(__name__)


class FigureWriter:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.jobs: queue.Queue = queue.Queue(maxsize=1)
        self.done: deque[work.Touched] = deque()
        self.thread = threading.Thread(target=self._run, name="figure-writer", daemon=True)
        self.thread.start()

    def submit(self, figures: list[dict], stats: list[dict], touched: work.Touched) -> None:
        try:
            self.jobs.put_nowait((figures, stats, touched))
        except queue.Full:   # still writing the previous batch: replace it with this newer one
            try:
                self.jobs.get_nowait()
            except queue.Empty:
                pass
            self.jobs.put_nowait((figures, stats, touched))

    def written(self) -> list[work.Touched]:
        """What the writer finished since the last call (for events)."""
        out = []
        while self.done:
            out.append(self.done.popleft())
        return out

    def _run(self) -> None:
        while True:
            item = self.jobs.get()
            if item is None:
                return
            figures, stats, touched = item
            try:
                with self.engine.begin() as conn:
                    host_store.write_figures(conn, figures)
                    work.update_running_stats(conn, stats)
            except SQLAlchemyError:
                log.exception("could not write host figures")
                continue
            self.done.append(touched)

    def close(self) -> None:
        try:
            self.jobs.put(None, timeout=5)
        except queue.Full:
            return
        self.thread.join(5)
