"""Change events: rows that changed, published in numbered batches on an XPUB socket.

Batches are coalesced (at most one per `interval`) and built only while someone subscribes:
the XPUB socket tells us about subscriptions, so a farm with no GUI open does no event work.
Reading the rows of a batch (5,000 hosts after a round of heartbeat figures) is done by a
`Background` thread, one batch at a time; changes noted meanwhile go into the next batch.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import zmq
from sqlalchemy import Engine

from cuefarm import protocol as p
from supervisor.store import jobs as rows
from supervisor.store.work import Touched

if TYPE_CHECKING:
    from supervisor.background import Background

log = logging.getLogger(__name__)
CHUNK = 2000
# Above this many changed frames a batch carries no frame rows and asks subscribers to re-read
# what they show: killing or retrying a million-frame job must not build a 240 MB message
# (over every client's MAXMSGSIZE) nor stall the loop reading a million rows.
MAX_BATCH_FRAMES = 20_000


class Publisher:
    def __init__(self, sock: zmq.Socket, supervisor_id: str, interval: float = 0.1,
                 max_frames: int = MAX_BATCH_FRAMES, *, builder: "Background"):
        self.sock = sock
        self.builder = builder    # reads each batch's rows off the loop
        self.max_frames = max_frames
        self.supervisor_id = supervisor_id
        self.interval = interval
        self.seq = 0
        self.subscribers = 0
        self.pending = Touched()
        self.next_due = 0.0
        self.greet = False        # a new subscriber: publish at once so it can sync
        self.everything = False   # the next batch asks subscribers to re-read everything

    def on_subscription(self) -> None:
        """Drain (un)subscription notices from the XPUB socket."""
        while True:
            try:
                msg = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg[:1] == b"\x01":
                self.subscribers += 1
                self.greet = True
            elif msg[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def resync(self) -> None:
        """Publish at once a batch that asks subscribers to re-read what they show (changes
        were made that this supervisor cannot list)."""
        if self.subscribers:
            self.greet = self.everything = True

    def note(self, touched: Touched) -> None:
        if self.subscribers:
            self.pending.merge(touched)

    def due_in(self, now: float) -> float | None:
        t = self.pending
        if self.builder.busy("batch"):
            return None           # the builder wakes the loop when it is done
        if self.greet:
            return 0.0
        if not (t.jobs or t.layers or t.frames or t.hosts):
            return None
        return max(0.0, self.next_due - now)

    def flush(self, engine: Engine, now: float) -> None:
        """Publish one batch with the current rows of everything touched since the last."""
        t = self.pending
        empty = not (t.jobs or t.layers or t.frames or t.hosts)
        if (empty and not self.greet) or (now < self.next_due and not self.greet):
            return
        if self.builder.busy("batch"):
            return                # the one being read goes first; this waits its turn
        self.greet = False
        self.pending = Touched()
        self.next_due = now + self.interval
        if not self.subscribers:
            return
        self.seq += 1
        seq, sid, max_frames = self.seq, self.supervisor_id, self.max_frames
        if self.everything:
            self.everything, max_frames = False, -1     # no frame rows: resync

        self.builder.submit("batch", lambda: (
            seq, p.encode(read_batch(engine, t, seq, sid, max_frames))))

    def send_built(self) -> None:
        """On the loop: publish the batches the builder finished.  One it could not read is
        not sent: subscribers see a gap in the numbers and read everything again."""
        for _, result, error in self.builder.collect():
            if error is not None:
                log.error("could not read event batch rows", exc_info=error)
                continue
            self._send(*result)

    def _send(self, seq: int, data: bytes) -> None:
        try:
            self.sock.send(data, zmq.NOBLOCK)
        except zmq.Again:
            log.warning("event batch %d dropped: subscribers are not keeping up", seq)


def read_batch(engine: Engine, t: Touched, seq: int, supervisor_id: str,
               max_frames: int) -> p.EventBatch:
    """The current rows of everything in `t`, as event batch `seq`."""
    resync = len(t.frames) > max_frames
    with engine.connect() as conn:
        batch = p.EventBatch(
            seq=seq, supervisor_id=supervisor_id,
            jobs=rows.job_rows(conn, sorted(t.jobs)) if t.jobs else [],
            layers=rows.layer_rows(conn, layer_ids=sorted(t.layers)) if t.layers else [],
            frames=[] if resync else [r for ids in _chunks(sorted(t.frames))
                                      for r in rows.frame_rows(conn, frame_ids=ids)],
            hosts=rows.host_rows(conn, sorted(t.hosts)) if t.hosts else [],
            resync=resync)
        conn.rollback()
    return batch


def _chunks(ids: list[int]):
    for o in range(0, len(ids), CHUNK):
        yield ids[o:o + CHUNK]
