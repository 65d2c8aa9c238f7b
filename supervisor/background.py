"""Database work that must not hold the loop: event batches, metrics, metering, usage.

With thousands of hosts, reading 5,000 host rows for an event batch or counting licences takes
tens to hundreds of milliseconds; on the loop that is as long a wait for every heartbeat
acknowledgement and every freed slot.  A `Background` runs such work on its own thread, one
piece at a time in submission order, and hands each result back to the loop, which it wakes
through an inproc socket.  The work reads and writes the database only; whatever must touch
the loop's state (the registry, sockets, `dispatch_needed`) is returned as a callable that the
loop runs when it collects the result.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections import deque
from typing import Any, Callable, Container, Hashable

import zmq

log = logging.getLogger(__name__)
_names = itertools.count(1)


class Background:
    def __init__(self, ctx: zmq.Context, name: str, thread: bool = True):
        """With `thread` False the work runs at once, on the caller's thread, in submit():
        the same hand-over, deterministically (an in-process test farm steps its loop)."""
        self.name = name
        self.ctx = ctx
        self.address = f"inproc://cuefarm-background-{name}-{next(_names)}"
        self.wake = ctx.socket(zmq.PULL)       # the loop polls this one
        self.wake.setsockopt(zmq.LINGER, 0)
        self.wake.bind(self.address)
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.results: deque[tuple[Hashable, Any, BaseException | None]] = deque()
        self.in_flight: set[Hashable] = set()
        self.thread: threading.Thread | None = None
        if thread:
            self.thread = threading.Thread(target=self._run, name=f"background-{name}",
                                           daemon=True)
            self.thread.start()

    def submit(self, key: Hashable, work: Callable[[], Any]) -> bool:
        """Queue `work()`; False (and nothing queued) while the last piece under `key` is
        still queued or running, so a slow pass is never stacked behind itself."""
        if key in self.in_flight:
            return False
        self.in_flight.add(key)
        if self.thread is None:
            self.results.append(_outcome(key, work))
        else:
            self.jobs.put((key, work))
        return True

    def busy(self, key: Hashable) -> bool:
        return key in self.in_flight

    def collect(self, ready: Container | None = None) -> list[tuple[Hashable, Any,
                                                                  BaseException | None]]:
        """On the loop: the (key, result, error) of every piece finished since the last call,
        in the order they finished (the order they were submitted).  `ready`, the sockets the
        loop's last poll found readable: with it, a call with no result kept and no wake-up
        to read costs nothing (a wake-up still unread shows in the next poll)."""
        if ready is not None and not self.results and self.wake not in ready:
            return []
        # Asked, not tried: a recv that finds nothing raises, and this runs every turn.
        while self.wake.get(zmq.EVENTS) & zmq.POLLIN:
            self.wake.recv(zmq.NOBLOCK)
        out = []
        while self.results:
            key, result, error = self.results.popleft()
            self.in_flight.discard(key)
            out.append((key, result, error))
        return out

    def _run(self) -> None:
        push = self.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.LINGER, 0)
        push.setsockopt(zmq.SNDHWM, 1000)
        push.connect(self.address)
        try:
            while True:
                item = self.jobs.get()
                if item is None:
                    return
                self.results.append(_outcome(*item))
                try:
                    push.send(b"", zmq.NOBLOCK)
                except zmq.ZMQError:       # the loop is behind on wake-ups: it finds it anyway
                    pass
        finally:
            push.close(0)

    def close(self, timeout: float = 5.0) -> None:
        if self.thread is not None:
            self.jobs.put(None)
            self.thread.join(timeout)
        self.wake.close(0)


def _outcome(key: Hashable, work: Callable[[], Any]) -> tuple[Hashable, Any, BaseException | None]:
    try:
        return key, work(), None
    except Exception as exc:   # handed to the loop, which logs and counts it
        return key, None, exc
