"""A proxy on the worker link that drops, duplicates and reorders messages in both directions.

Workers connect to the proxy's ROUTER as they would to a supervisor; for each worker the proxy
opens a DEALER of its own to the real worker link, so the supervisor sees one connection per
worker as usual.  Each message passing either way is dropped, sent twice, or held back and
sent after the next one, at the given rates, from one seeded random stream.  So that every
kind happens whatever the seed, a kind that has not happened in a direction by its
`FORCE_AFTER`th message is done to the next message that way."""

from __future__ import annotations

import random
import threading
from collections import Counter

import zmq

FORCE_AFTER = 10
KINDS = ("dropped", "reordered", "duplicated")


class ChaosProxy:
    def __init__(self, listen_port: int, supervisor_port: int, seed: int,
                 drop: float = 0.05, duplicate: float = 0.05, reorder: float = 0.05):
        self.rnd = random.Random(seed)
        self.rates = (drop, duplicate, reorder)
        self.upstream = f"tcp://127.0.0.1:{supervisor_port}"
        self.ctx = zmq.Context()
        self.front = self.ctx.socket(zmq.ROUTER)
        self.front.setsockopt(zmq.LINGER, 0)
        self.front.bind(f"tcp://127.0.0.1:{listen_port}")
        self.backs: dict[bytes, zmq.Socket] = {}       # worker identity -> its upstream DEALER
        self.owner: dict[zmq.Socket, bytes] = {}
        self.held: dict[tuple, list[bytes]] = {}       # (direction, worker) -> held message
        self.counts: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pass(self, direction: str, worker: bytes, data: bytes, send) -> None:
        """Send `data` on with the chaos applied; `send(data)` delivers one copy."""
        drop, dup, reorder = self.rates
        r = self.rnd.random()
        key = (direction, worker)
        self.counts[f"{direction} messages"] += 1
        if self.counts[f"{direction} messages"] > FORCE_AFTER:
            missing = [k for k in KINDS if not self.counts[f"{direction} {k}"]
                       and not (k == "reordered" and key in self.held)]
            if missing:          # r picked inside that kind's band below
                r = {"dropped": 0.0, "reordered": drop, "duplicated": drop + reorder}[missing[0]]
        if r < drop:
            self.counts[f"{direction} dropped"] += 1
            return
        if r < drop + reorder and key not in self.held:
            self.counts[f"{direction} reordered"] += 1
            self.held[key] = [data]            # goes after the next message this way
            return
        send(data)
        if r < drop + reorder + dup:
            self.counts[f"{direction} duplicated"] += 1
            send(data)
        self.counts[f"{direction} passed"] += 1
        for late in self.held.pop(key, []):
            send(late)

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        while not self.stop.is_set():
            for sock, _ in poller.poll(50):
                try:
                    parts = sock.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    continue
                if sock is self.front:
                    worker, data = parts[0], parts[-1]
                    back = self.backs.get(worker)
                    if back is None:
                        back = self.backs[worker] = self.ctx.socket(zmq.DEALER)
                        back.setsockopt(zmq.LINGER, 0)
                        back.connect(self.upstream)
                        self.owner[back] = worker
                        poller.register(back, zmq.POLLIN)
                    self._pass("up", worker, data, back.send)
                else:
                    worker = self.owner[sock]
                    self._pass("down", worker, parts[-1],
                               lambda d, w=worker: self._to_worker(w, d))
        for s in [self.front, *self.backs.values()]:
            s.close(0)
        self.ctx.term()

    def _to_worker(self, worker: bytes, data: bytes) -> None:
        try:
            self.front.send_multipart([worker, data], zmq.NOBLOCK)
        except zmq.ZMQError:
            self.counts["down undeliverable"] += 1

    def close(self) -> Counter[str]:
        self.stop.set()
        self.thread.join(10)
        return self.counts
