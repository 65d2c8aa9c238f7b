"""A simulated supervisor speaking the real protocol, for connection tests that need control
the real one does not offer: dropped batches (sequence gaps), a new supervisor identity, a
supervisor that goes away and comes back on the same port.

It serves the client API on a ROUTER socket and publishes `EventBatch`es on an XPUB socket,
like the real supervisor, from its own thread.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections import Counter
from typing import Any

import zmq

from cuefarm import protocol as p
from tests.farm import free_port_block


class SimSupervisor:
    def __init__(self, port: int | None = None):
        self.port = port or free_port_block()
        self.address = f"127.0.0.1:{self.port}"
        self.sid = uuid.uuid4().hex
        self.seq = 0
        self.jobs: dict[int, dict] = {}
        self.hosts: dict[int, dict] = {}
        self.layers: dict[int, dict] = {}
        self.frames: dict[int, dict] = {}
        self.logs: dict[tuple[int, int], bytes] = {}     # (frame id, attempt) -> log bytes
        self.dependencies: dict[int, list[dict]] = {}    # job id -> dependency rows
        self.history: dict[str, list[tuple[float, float]]] = {}   # metric series -> points
        self.requests: Counter = Counter()
        self.controls: list[tuple[str, Any]] = []
        self.silent: set[str] = set()       # request types left without a reply
        self.subscribers = 0
        self.lock = threading.Lock()
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # -- test-side API ------------------------------------------------------------------------

    def start(self) -> "SimSupervisor":
        self._stop.clear()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.subscribers = 0

    def new_identity(self) -> None:
        """Act like a restarted supervisor: a new id, sequence numbers from the start."""
        with self.lock:
            self.sid = uuid.uuid4().hex
            self.seq = 0

    def publish(self, skip: int = 0, **changes: list) -> None:
        """Publish one batch of rows (jobs=, frames=, hosts=, layers=, deleted_jobs=), storing
        them first; `skip` drops that many sequence numbers, as if batches were lost."""
        with self.lock:
            for kind in ("jobs", "hosts", "layers", "frames"):
                table = getattr(self, kind)
                for row in changes.get(kind, []):
                    table[row["id"]] = {**table.get(row["id"], {}), **row}
            for jid in changes.get("deleted_jobs", []):
                self.jobs.pop(jid, None)
            self.seq += 1 + skip
            batch = p.EventBatch(seq=self.seq, supervisor_id=self.sid, **changes)
        self._outbox.put(p.encode(batch))

    # -- the supervisor's thread --------------------------------------------------------------

    def _run(self) -> None:
        ctx = zmq.Context.instance()
        router = ctx.socket(zmq.ROUTER)
        pub = ctx.socket(zmq.XPUB)
        for s in (router, pub):
            s.setsockopt(zmq.LINGER, 0)
        router.bind(f"tcp://127.0.0.1:{self.port}")
        pub.bind(f"tcp://127.0.0.1:{self.port + 2}")
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(pub, zmq.POLLIN)
        self._ready.set()
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(20))
                if pub in ready:
                    msg = pub.recv()
                    self.subscribers += 1 if msg[:1] == b"\x01" else -1
                if router in ready:
                    frames = router.recv_multipart()
                    env, body = p.decode(frames[-1])
                    if env.type in self.silent:
                        self.requests[env.type] += 1
                        continue          # never answered, as by a hung supervisor
                    reply = self._handle(env.type, body)
                    router.send_multipart(frames[:-1] + [p.encode(reply, env.id)])
                while True:
                    try:
                        pub.send(self._outbox.get_nowait())
                    except queue.Empty:
                        break
        finally:
            router.close(0)
            pub.close(0)

    def _handle(self, kind: str, body: p.Body) -> p.Body:
        self.requests[kind] += 1
        with self.lock:
            if kind == "ping":
                return p.Pong("sim", self.sid, self.seq, self.port + 2)
            if kind == "list_jobs":
                return p.Rows(list(self.jobs.values()))
            if kind == "list_hosts":
                return p.Rows(list(self.hosts.values()))
            if kind == "list_frames" and body.host is not None:
                return p.Rows([r for r in self.frames.values() if r.get("host") == body.host
                               and r.get("state") == "RUNNING"])
            if kind in ("list_layers", "list_frames"):
                if body.job_id not in self.jobs:
                    return p.Error("not_found", f"no job {body.job_id}", "job_id")
                table = self.layers if kind == "list_layers" else self.frames
                found = [r for r in table.values() if r["job_id"] == body.job_id]
                if kind == "list_frames":
                    end = None if body.limit is None else body.offset + body.limit
                    found = found[body.offset:end]
                return p.Rows(found)
            if kind == "job_control":
                self.controls.append((body.action, list(body.job_ids)))
                missing = [j for j in body.job_ids if j not in self.jobs]
                if missing:
                    return p.Error("not_found", f"no job {missing[0]}", "job_ids")
                return p.Done(len(body.job_ids))
            if kind in ("frame_control", "host_control"):
                self.controls.append((body.action, p.to_builtins(body)))
                return p.Done(1)
            if kind == "get_log":
                return self._log(body)
            if kind == "list_dependencies":
                return p.Rows(self.dependencies.get(body.job_id, []))
            if kind == "why":
                job = self.jobs.get(body.job_id)
                if job is None:
                    return p.Error("not_found", f"no job {body.job_id}", "job_id")
                return p.Row({"job_id": body.job_id, "job": job["name"], "status": job["status"],
                              "reasons": [f"simulated reason for {body.layer}/{body.frame}"]})
            if kind == "metric_history":
                if body.series not in self.history:
                    return p.Error("not_found", f"no series {body.series}", "series")
                return p.MetricPoints(body.series, body.resolution, self.history[body.series])
        return p.Error("unknown_type", kind)

    def _log(self, body: p.GetLog) -> p.Body:
        frame = next((f for f in self.frames.values() if f["job_id"] == body.job_id
                      and f["layer"] == body.layer and f["number"] == body.frame), None)
        if frame is None:
            return p.Error("not_found", "no such frame", "frame")
        number = body.attempt or frame["attempt"]
        data = self.logs.get((frame["id"], number))
        if data is None:
            return p.Error("not_found", f"frame {body.frame} has no attempt {number}", "attempt")
        size = len(data)   # the same arithmetic as rqd's logs.read_range
        start = max(0, size + body.offset) if body.offset < 0 else min(body.offset, size)
        chunk = data[start:start + body.limit]
        return p.LogChunk(f"{frame['id']}.{number}", frame.get("host") or "sim", start, size,
                          chunk)
