"""All network I/O of the GUI, on one worker thread.

The worker owns a `cuefarm.Client` (requests) and a `cuefarm.Events` (the supervisor's change
events) and turns them into Qt signals carrying plain Python data; the UI thread only applies
them to models.  A big job's frames come in pages: the first is shown at once, the rest are
fetched one page per turn of the worker's loop, so commands and events are served between
pages.  There is no polling of data: the supervisor publishes a batch whenever rows
change.  The worker resyncs (jobs, hosts, and the selected job's layers and frames) when it
starts, when a sequence gap shows batches were missed, when the supervisor changed, and when
the supervisor comes back after being unreachable.  A watchdog pings only when no batch has
arrived for a second, to tell a quiet supervisor from a dead one within a few seconds.

The UI thread talks to the worker through a command queue and a wake-up socket pair, so the
worker sleeps in one poll on the events socket and the wake-up socket.
"""

from __future__ import annotations

import logging
import queue
import socket
import sys
import time
from typing import Any, Callable

import zmq
from qtpy.QtCore import QThread, Signal

from cuefarm import Client, CueFarmError, Unreachable
from cuegui import permissions
from cuegui.logfollow import LogFollower
from cuegui.messages import Changes, FramesPage, HostData, JobData, Snapshot, merge_rows
from cuegui.views.depgraph import fetch_dependencies
from cuegui.wire import GuiClient, GuiEvents

__all__ = ["Changes", "Connection", "FramesPage", "HostData", "JobData", "Snapshot"]

log = logging.getLogger(__name__)

# A dead supervisor is noticed within IDLE_PING + PING_TIMEOUT (2.5 s): a second without a
# batch brings a ping, unanswered after 1.5 s.  A busy farm's batches make the pings rare.
IDLE_PING = 1.0        # seconds without a batch before the watchdog pings
PING_TIMEOUT = 1.5
REQUEST_TIMEOUT = 15.0
UNREACHABLE_AFTER = 3  # failed pings before "reconnecting" becomes "unreachable"
MAX_BACKOFF = 5.0
MAX_DRAIN = 500        # batches merged into one emission at most
FIRST_PAGE = 1000      # frames shown at once when a job is selected
PAGE_SIZE = 10_000     # frames per request after the first page
# The worker's Python work holds the GIL the UI thread needs after each Qt call it makes; at
# Python's default 5 ms switch interval a busy worker made a 7 ms repaint take 20-120 ms.
GIL_SWITCH_INTERVAL = 0.001


class _Paging:
    """The selected job's frames still to fetch: from `offset`; `loaded` holds the ids so far."""

    def __init__(self, job_id: Any, frames: list[dict]):
        self.job_id = job_id
        self.offset = len(frames)
        self.loaded = {f["id"] for f in frames}


class Connection(QThread):
    """The worker thread; its public methods are called from the UI thread and only queue work."""

    snapshot = Signal(object)          # Snapshot
    changes = Signal(object)           # Changes
    job_loaded = Signal(object)        # JobData
    frames_page = Signal(object)       # FramesPage
    host_loaded = Signal(object)       # HostData
    log_piece = Signal(object)         # logfollow.LogPiece
    state_changed = Signal(str, str)   # connecting|connected|reconnecting|unreachable, detail
    action_done = Signal(str, object)  # label, result
    action_failed = Signal(str, str)   # label, message
    query_done = Signal(str, object)   # key, result
    query_failed = Signal(str, str)    # key, message

    def __init__(self, address: str, parent=None, idle_ping: float = IDLE_PING,
                 request_timeout: float = REQUEST_TIMEOUT, ping_timeout: float = PING_TIMEOUT,
                 first_page: int = FIRST_PAGE, page_size: int = PAGE_SIZE):
        super().__init__(parent)
        self.address = address
        self.first_page = first_page
        self.page_size = page_size
        self.idle_ping = idle_ping
        self.ping_timeout = ping_timeout
        self.request_timeout = request_timeout
        self.state = "connecting"
        self.supervisor: dict = {}
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        # Worker-thread state from here on.
        self._client: Client | None = None
        self._events: GuiEvents | None = None
        self._poller: zmq.Poller | None = None
        self._selected: Any = None
        self._paging: _Paging | None = None   # the selected job's frames still to fetch
        self._host: str | None = None
        self._host_frames: set = set()        # ids of the frames running there
        self._follow: LogFollower | None = None
        self._sid: str | None = None
        self._synced_seq = -1
        self._last_heard = 0.0
        self._failures = 0
        self._need_resync = True
        self._retry_at = 0.0
        self._stopping = False
        # True until a batch proves the supervisor has seen our subscription; see _drain_events.
        self._fresh = True

    # -- UI-thread API ------------------------------------------------------------------------

    def _send(self, *command: Any) -> None:
        self._commands.put(command)
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full of wake-ups already

    def select_job(self, job_id: Any) -> None:
        """Load the layers, frames and dependencies of `job_id` (None: none) and follow them."""
        self._send("select", job_id)

    def select_host(self, name: str | None) -> None:
        """Load the frames running on host `name` and follow them; None: none."""
        self._send("host", name)

    def run_action(self, label: str, call: Callable[[Client], Any]) -> None:
        """Run `call(client)` on the worker; report with action_done or action_failed."""
        self._send("action", label, call)

    def run_query(self, key: str, call: Callable[[Client], Any]) -> None:
        """Run a read-only `call(client)`; answer with query_done or query_failed under `key`."""
        self._send("query", key, call)

    def open_log(self, frame: dict, attempt: int | None = None) -> None:
        """Show a frame attempt's log (the latest attempt by default) and follow it."""
        self._send("log", dict(frame), attempt)

    def close_log(self) -> None:
        self._send("log", None, None)

    def log_page(self, where: str) -> None:
        """Extend the open log's window: "earlier", "later", or "tail" (back to the end)."""
        self._send("log_page", where)

    def find_in_log(self, pattern: str, offset: int = 0) -> None:
        """Scan the open log from byte `offset` for a regular expression; jump to the match."""
        self._send("log_find", pattern, offset)

    def resync(self) -> None:
        """Fetch everything afresh (a user asked for it)."""
        self._send("resync")

    def start(self, *args) -> None:
        """Start the worker (see GIL_SWITCH_INTERVAL)."""
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL))
        super().start(*args)

    def stop(self, wait_ms: int = 20000) -> None:
        """Ask the worker to finish and wait for it."""
        if self.isRunning():
            self._send("stop")
            self.wait(wait_ms)
        self._wake_r.close()
        self._wake_w.close()

    # -- worker thread ------------------------------------------------------------------------

    def run(self) -> None:
        self._client = GuiClient(self.address, timeout=self.request_timeout)
        try:
            self._events = GuiEvents(self._client.current)
        except CueFarmError as exc:      # a key file that cannot be used: say why, stop
            self._emit_state("unreachable", str(exc))
            self._client.close()
            return
        poller = self._poller = zmq.Poller()
        poller.register(self._events.sock, zmq.POLLIN)
        poller.register(self._wake_r.fileno(), zmq.POLLIN)
        self._emit_state("connecting", self.address)
        try:
            self._resync()
            while not self._stopping:
                ready = dict(poller.poll(int(self._wait() * 1000)))
                if self._wake_r.fileno() in ready:
                    self._do_commands()
                if self._stopping:
                    break
                if self._events.sock in ready:
                    self._drain_events()
                self._watchdog()
                if self._paging is not None and not self._need_resync:
                    self._next_page()
        except Exception:  # noqa: BLE001 - the thread must report, not vanish
            log.exception("connection worker failed")
            self._emit_state("unreachable", "internal error; see the log")
        finally:
            self._events.close()
            self._client.close()

    def _emit_state(self, state: str, detail: str) -> None:
        if state != self.state or state != "connected":
            self.state = state
            self.state_changed.emit(state, detail)

    def _wait(self) -> float:
        now = time.monotonic()
        if self._need_resync:
            return max(0.0, self._retry_at - now)
        if self._paging is not None:
            return 0.0          # more frames to fetch: only look for commands and events
        return max(0.0, self._last_heard + self.idle_ping - now)

    def _interrupted(self) -> bool:
        """A long scan gives way when the user asked for something else."""
        return not self._commands.empty()

    # commands

    def _do_commands(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        commands = []
        while True:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                break
        # Only the last selection of each kind counts: the user moved on from the others.
        last = {kind: max((i for i, c in enumerate(commands) if c[0] == kind), default=-1)
                for kind in ("select", "host")}
        for i, command in enumerate(commands):
            kind = command[0]
            if kind == "stop":
                self._stopping = True
                return
            if kind == "select" and i == last["select"]:
                self._select(command[1])
            elif kind == "host" and i == last["host"]:
                self._select_host(command[1])
            elif kind in ("action", "query"):
                self._call(kind, command[1], command[2])
            elif kind == "log":
                self._open_log(command[1], command[2])
            elif kind == "log_page" and self._follow is not None:
                page = {"earlier": self._follow.earlier, "later": self._follow.later,
                        "tail": self._follow.tail}.get(command[1])
                if page is not None:
                    page(self._client)
            elif kind == "log_find" and self._follow is not None:
                self._follow.find(self._client, command[1], command[2])
            elif kind == "resync":
                self._resync()

    def _job_data(self, job_id: Any) -> JobData:
        """Layers, dependencies and the first page of frames; the other pages are fetched
        by `_next_page` afterwards."""
        client = self._client
        self._paging = None
        layers = client.layers(job_id)
        frames = client.frames(job_id, offset=0, limit=self.first_page)
        try:
            deps = fetch_dependencies(client, job_id)
        except Unreachable:
            raise
        except CueFarmError:
            deps = []        # a supervisor without dependency listing
        # More rows than asked for: a supervisor that does not page sent them all.
        complete = len(frames) != self.first_page
        if not complete:
            self._paging = _Paging(job_id, frames)
        return JobData(job_id, layers, frames, deps, complete)

    def _select(self, job_id: Any) -> None:
        self._selected = job_id
        self._paging = None
        if job_id is None:
            self.job_loaded.emit(JobData(None, [], []))
            return
        try:
            data = self._job_data(job_id)
        except Unreachable as exc:
            self._lost(str(exc))
            return
        except CueFarmError as exc:
            self.action_failed.emit("Load frames", str(exc))
            data = JobData(job_id, [], [])
        self.job_loaded.emit(data)

    def _next_page(self) -> None:
        """Fetch and emit the next page of the selected job's frames."""
        paging = self._paging
        try:
            frames = self._client.frames(paging.job_id, offset=paging.offset,
                                         limit=self.page_size)
        except Unreachable as exc:
            self._lost(str(exc))          # the resync starts the frames again
            return
        except CueFarmError as exc:       # the job went away meanwhile
            self._paging = None
            self.action_failed.emit("Load frames", str(exc))
            self.frames_page.emit(FramesPage(paging.job_id, [], True))
            return
        done = len(frames) != self.page_size
        paging.offset += len(frames)
        paging.loaded.update(f["id"] for f in frames)
        if done:
            self._paging = None
        self.frames_page.emit(FramesPage(paging.job_id, frames, done))

    def _select_host(self, name: str | None) -> None:
        self._host = name
        frames: list[dict] = []
        if name is not None:
            try:
                frames = self._client.frames(host=name)
            except Unreachable as exc:
                self._lost(str(exc))
                return
            except CueFarmError as exc:       # the host was removed meanwhile
                self.action_failed.emit("Load host frames", str(exc))
        self._host_frames = {f["id"] for f in frames}
        self.host_loaded.emit(HostData(name, frames))

    def _call(self, kind: str, label: str, call: Callable[[Client], Any]) -> None:
        failed = self.action_failed if kind == "action" else self.query_failed
        if self._need_resync:
            # Lost: nothing is sent until the supervisor answers again.
            failed.emit(label, "the supervisor is not reachable")
            return
        try:
            result = call(self._client)
        except Unreachable as exc:
            failed.emit(label, str(exc))
            self._lost(str(exc))
        except CueFarmError as exc:
            failed.emit(label, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bad call must not end the worker
            log.exception("%s %s failed", kind, label)
            failed.emit(label, f"{type(exc).__name__}: {exc}")
        else:
            (self.action_done if kind == "action" else self.query_done).emit(label, result)

    # resync and the watchdog

    def _resync(self) -> None:
        client = self._client
        try:
            pong = client.ping(timeout=self.ping_timeout)
            # The supervisor's word on what this user may do caps the GUI's mode.
            pong = {**pong, "role": permissions.supervisor_role(client)}
            jobs, hosts = client.jobs(), client.hosts()
            data = JobData(self._selected, [], [])
            if self._selected is not None:
                try:
                    data = self._job_data(self._selected)
                except Unreachable:
                    raise
                except CueFarmError:
                    pass  # the job is gone; the snapshot's job list says so
        except CueFarmError as exc:
            self._lost(str(exc))
            return
        self._follow_supervisor()
        self._sid, self._synced_seq = pong["supervisor_id"], int(pong["event_seq"])
        # Batches after the ones this snapshot already reflects continue the sequence.
        self._events.supervisor_id, self._events.last_seq = self._sid, self._synced_seq
        self._need_resync = False
        self._failures = 0
        self._last_heard = time.monotonic()
        self.supervisor = pong
        self.snapshot.emit(Snapshot(pong, jobs, hosts, self._selected, data.layers, data.frames,
                                    data.dependencies, data.complete))
        self._emit_state("connected", f"{self._client.current} - supervisor "
                                      f"{pong.get('version', '')}")
        if self._host is not None:
            self._select_host(self._host)
        if self._follow is not None:
            self._follow.fetch(self._client)

    def _follow_supervisor(self) -> None:
        """Given several supervisors, the client moves on when one does not answer: take the
        events of the one it reached (the snapshot just read is its)."""
        if self._events.at == self._client.current:
            return
        log.info("events now from the supervisor at %s", self._client.current)
        self._poller.unregister(self._events.sock)
        self._events.close()
        self._events = GuiEvents(self._client.current)
        self._poller.register(self._events.sock, zmq.POLLIN)
        self._fresh = True        # its first batch shows it has seen the subscription

    def _lost(self, detail: str) -> None:
        self._fresh = True        # the events socket will subscribe again
        self._paging = None       # the resync fetches the frames from the start
        self._failures += 1
        self._need_resync = True
        self._retry_at = time.monotonic() + min(MAX_BACKOFF, 0.5 * 2 ** self._failures)
        state = "unreachable" if self._failures >= UNREACHABLE_AFTER else "reconnecting"
        log.warning("%s: %s (trying again in %.1f s)", state, detail,
                    self._retry_at - time.monotonic())
        self._emit_state(state, detail)

    def _watchdog(self) -> None:
        now = time.monotonic()
        if self._need_resync:
            if now >= self._retry_at:
                self._resync()
            return
        if now - self._last_heard < self.idle_ping:
            return
        try:
            pong = self._client.ping(timeout=self.ping_timeout)
        except CueFarmError as exc:
            self._lost(str(exc))
            return
        self._last_heard = time.monotonic()
        if pong["supervisor_id"] != self._sid:
            log.info("supervisor changed (%s -> %s); resyncing", self._sid, pong["supervisor_id"])
            self._resync()

    # events

    def _drain_events(self) -> None:
        pending = Changes(job_id=self._selected, host=self._host)
        follow_hit = False        # the followed frame changed: its log may have grown
        gap = False

        def on_gap() -> None:
            nonlocal gap
            gap = True

        for _ in range(MAX_DRAIN):
            gap = False
            batch = self._events.receive(0, on_gap=on_gap)
            if batch is None:
                break
            self._last_heard = time.monotonic()
            if gap and batch.supervisor_id == self._sid and batch.seq <= self._synced_seq:
                # Published before the snapshot was taken, which already holds it.
                self._events.last_seq = self._synced_seq
                continue
            if gap or self._fresh:
                # A gap means batches were lost.  The first batch after (re)subscribing gets
                # the same treatment: the supervisor publishes only while it knows of a
                # subscriber, so changes between our snapshot and its noticing our
                # subscription were never published.  This batch proves it has noticed.
                log.info("resyncing at event seq %s (%s)", batch.seq,
                         "gap or new supervisor" if gap else "first batch")
                self._fresh = False
                self._resync()        # supersedes everything gathered so far
                pending = Changes(job_id=self._selected, host=self._host)
                continue
            self._synced_seq = batch.seq
            merge_rows(pending.jobs, batch.jobs)
            merge_rows(pending.hosts, batch.hosts)
            for rid in batch.deleted_jobs:
                pending.jobs.pop(rid, None)
                pending.deleted_jobs.add(rid)
            sel = self._selected
            if sel is not None:
                merge_rows(pending.layers, [r for r in batch.layers if r.get("job_id") == sel])
                merge_rows(pending.frames, self._selected_frames(batch.frames))
            if self._host is not None:
                self._note_host_frames(pending, batch.frames)
            if self._follow is not None and self._follow.update(batch.frames):
                follow_hit = True
        if pending:
            self.changes.emit(pending)
        if follow_hit and self._follow is not None:
            self._follow.fetch(self._client)

    def _selected_frames(self, frames: list[dict]) -> list[dict]:
        """The selected job's frames among changed ones.  While its pages are still coming,
        only those of pages already sent: a page fetched later is newer than this batch, and
        a row sent ahead of its page would take the wrong place in the supervisor's order."""
        sel, paging = self._selected, self._paging
        mine = [r for r in frames if r.get("job_id") == sel]
        if paging is not None and paging.job_id == sel:
            mine = [r for r in mine if r.get("id") in paging.loaded]
        return mine

    def _note_host_frames(self, pending: Changes, frames: list[dict]) -> None:
        """Frames that started on the selected host, or were running there and changed."""
        host, known = self._host, self._host_frames
        mine = []
        for f in frames:
            if f.get("id") in known or (f.get("host") == host and f.get("state") == "RUNNING"):
                mine.append(f)
                if f.get("host") == host and f.get("state") == "RUNNING":
                    known.add(f["id"])
                else:
                    known.discard(f["id"])
        merge_rows(pending.host_frames, mine)

    # logs

    def _open_log(self, frame: dict | None, attempt: int | None) -> None:
        if frame is None:
            self._follow = None
            return
        self._follow = LogFollower(frame, attempt, self.log_piece.emit, self._lost,
                                   interrupted=self._interrupted)
        self._follow.fetch(self._client)
