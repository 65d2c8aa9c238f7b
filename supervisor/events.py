"""Change events: rows that changed, published in numbered batches on an XPUB socket.

Batches are coalesced (at most one per `interval`) and built only while someone subscribes:
the XPUB socket tells us about subscriptions, so a farm with no GUI open does no event work.
Reading the rows of a batch (5,000 hosts after a round of heartbeat figures) is done by a
`Background` thread, one batch at a time; changes noted meanwhile go into the next batch.

Each batch goes out as two parts, a topic and the batch.  Without keys there is one topic,
ALL, and every subscriber gets every row.  With keys the socket decides what each subscriber
receives (XPUB_MANUAL): a subscription arrives with the key of its connection, and the
subscriber is given the topic of its *view*, the restricted projects it may not see
(supervisor.access.hidden_projects).  Each batch is sent once per view with those projects'
rows left out, under the same sequence number, so every subscriber sees one batch per number
and the gap-and-resync rule holds.  When keys or project members change, the views are made
anew: the old topics get a last batch asking their subscribers to subscribe again, which they
do over the same connection (a revoked key is then refused).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from typing import TYPE_CHECKING, Callable

import msgspec
import zmq
from sqlalchemy import Engine

from cuefarm import protocol as p
from supervisor.store import jobs as rows
from supervisor.store.engine import reading
from supervisor.store.work import Touched

if TYPE_CHECKING:
    from supervisor.background import Background

log = logging.getLogger(__name__)
CHUNK = 2000
# Above this many changed frames a batch carries no frame rows and asks subscribers to re-read
# what they show: killing or retrying a million-frame job must not build a 240 MB message
# (over every client's MAXMSGSIZE) nor stall the loop reading a million rows.
MAX_BATCH_FRAMES = 20_000
ALL = b"all"          # the topic of every batch without keys


def view_topic(epoch: int, hidden: frozenset[str]) -> bytes:
    digest = hashlib.sha256("\0".join(sorted(hidden)).encode()).hexdigest()[:16]
    return f"v{epoch}.{digest}".encode()


class Publisher:
    def __init__(self, sock: zmq.Socket, supervisor_id: str, interval: float = 0.1,
                 max_frames: int = MAX_BATCH_FRAMES, *, builder: "Background",
                 hidden_for: Callable[[bytes], frozenset[str] | None] | None = None):
        """With `hidden_for` (keys: the socket is XPUB_MANUAL) each subscription's message
        frame is given to it; it returns the projects that subscriber may not see, or None
        to refuse the subscription."""
        self.sock = sock
        self.hidden_for = hidden_for
        self.views: dict[bytes, frozenset[str]] = {}   # topics published now -> hidden projects
        self.refs: Counter[bytes] = Counter()          # subscribers per topic (any epoch)
        self.epoch = 0
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
                frame = self.sock.recv(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            msg = frame.bytes
            if self.hidden_for is not None:
                self._manual(frame, msg)
            elif msg[:1] == b"\x01":
                self.subscribers += 1
                self.greet = True
            elif msg[:1] == b"\x00":
                self.subscribers = max(0, self.subscribers - 1)

    def _manual(self, frame: zmq.Frame, msg: bytes) -> None:
        """With keys: give a subscriber the topic of its view (or nothing); count the ends
        of subscriptions to given topics (the socket reports them when a subscriber goes)."""
        if msg[:1] == b"\x01":
            hidden = self.hidden_for(frame)
            if hidden is None:
                return
            topic = view_topic(self.epoch, hidden)
            self.views[topic] = hidden
            self.sock.setsockopt(zmq.SUBSCRIBE, topic)     # for the subscriber just heard
            self.refs[topic] += 1
            self.subscribers += 1
            self.greet = True
        elif msg[:1] == b"\x00" and msg[1:] in self.refs:
            topic = msg[1:]
            self.refs[topic] -= 1
            self.subscribers = max(0, self.subscribers - 1)
            if self.refs[topic] <= 0:
                del self.refs[topic]
                self.views.pop(topic, None)

    def views_changed(self) -> None:
        """Keys or project members changed: ask every subscriber to subscribe again, so each
        gets the view it has now (or none)."""
        if self.hidden_for is None or not self.views:
            return
        old, self.views = list(self.views), {}
        self.epoch += 1
        self.seq += 1
        data = p.encode(p.EventBatch(seq=self.seq, supervisor_id=self.supervisor_id,
                                     resync=True, resubscribe=True))
        for topic in old:
            self._send(self.seq, [(topic, data)])

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
        if self.hidden_for is not None and not self.views:
            return            # nobody may see anything yet: they subscribe again first
        self.seq += 1
        seq, sid, max_frames = self.seq, self.supervisor_id, self.max_frames
        if self.everything:
            self.everything, max_frames = False, -1     # no frame rows: resync
        views = dict(self.views) if self.hidden_for is not None else None
        self.builder.submit("batch", lambda: (
            seq, encode_views(engine, read_batch(engine, t, seq, sid, max_frames), views)))

    def send_built(self, ready=None) -> None:
        """On the loop: publish the batches the builder finished.  One it could not read is
        not sent: subscribers see a gap in the numbers and read everything again.  `ready`:
        as Background.collect's."""
        for _, result, error in self.builder.collect(ready):
            if error is not None:
                log.error("could not read event batch rows", exc_info=error)
                continue
            self._send(*result)

    def _send(self, seq: int, parts: list[tuple[bytes, bytes]]) -> None:
        for topic, data in parts:
            try:
                self.sock.send_multipart([topic, data], zmq.NOBLOCK)
            except zmq.Again:
                log.warning("event batch %d dropped: subscribers are not keeping up", seq)


def encode_views(engine: Engine, batch: p.EventBatch,
                 views: dict[bytes, frozenset[str]] | None) -> list[tuple[bytes, bytes]]:
    """The batch as (topic, message) parts: one for everyone without keys; one per view
    with keys, less the rows of the projects that view hides."""
    if views is None:
        return [(ALL, p.encode(batch))]
    out: list[tuple[bytes, bytes]] = []
    whole: bytes | None = None
    hidden_sets = {h for h in views.values() if h}
    gone: dict[frozenset[str], set[int]] = {}
    if hidden_sets:
        ids = {r["job_id"] for rows in (batch.layers, batch.frames) for r in rows}
        ids.update(r["id"] for r in batch.jobs)
        with reading(engine) as conn:
            for hidden in hidden_sets:
                gone[hidden] = rows.in_projects(conn, ids, hidden) if ids else set()
            conn.rollback()
    for topic, hidden in views.items():
        if not hidden:
            whole = whole or p.encode(batch)
            out.append((topic, whole))
            continue
        drop = gone[hidden]
        out.append((topic, p.encode(msgspec.structs.replace(
            batch, jobs=[r for r in batch.jobs if r["id"] not in drop],
            layers=[r for r in batch.layers if r["job_id"] not in drop],
            frames=[r for r in batch.frames if r["job_id"] not in drop]))))
    return out


def read_batch(engine: Engine, t: Touched, seq: int, supervisor_id: str,
               max_frames: int) -> p.EventBatch:
    """The current rows of everything in `t`, as event batch `seq`."""
    resync = len(t.frames) > max_frames
    with reading(engine) as conn:
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
