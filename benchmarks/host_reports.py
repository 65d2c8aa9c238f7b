"""Host reports at studio scale: N simulated workers heartbeating once per second.

Starts a real supervisor (PostgreSQL by default) and simulated workers in separate processes
(real protocol, one DEALER socket per worker, heartbeats spread evenly over each second), runs
for a while and prints heartbeat acknowledgement latency (p50/p99/max as the workers saw it),
reports/s handled, supervisor CPU, acks that never came, re-registrations, and how many hosts
the supervisor marked DOWN at any time during the run (should all be 0).

    python benchmarks/host_reports.py [--hosts 5000] [--seconds 30] [--db postgres|sqlite]
"""

from __future__ import annotations

import math
import multiprocessing as mp
import resource
import sys
import threading
import time
from collections import deque
from pathlib import Path

import click
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cuefarm  # noqa: E402
from benchmarks.benchfarm import supervisor  # noqa: E402
from cuefarm import Client, Events  # noqa: E402
from cuefarm import protocol as p  # noqa: E402


def raise_fd_limit() -> None:
    """One socket per simulated worker: lift the soft file limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _register(s: zmq.Socket, name: str) -> None:
    s.send(p.encode(p.Register(name=name, hostname=name, os="linux", cores=8, memory_mb=32000,
                               slots=8, version=cuefarm.__version__)))


def simulate(port: int, names: list[str], seconds: float, grace: float, out: mp.Queue,
             go, done) -> None:
    """One process of simulated workers: register, then heartbeat each once per second.

    The supervisor answers every heartbeat with exactly one message (Ack, or Reregister when
    it no longer knows the worker) and a DEALER socket keeps order, so each answer belongs to
    the oldest unanswered heartbeat of that worker: latencies are timed from the heartbeat
    they answer, never from a newer one.  After `seconds`, answers are awaited for `grace`
    seconds more; heartbeats still unanswered then are counted as missing acks.

    The timed run starts once the keep-alives sent while the others registered are answered
    (up to 5,000 of them at once: the first timed heartbeats queued behind them), and the
    results go out only when every simulator's run is over (`done`, a barrier): one process
    sending its results while another still times its last answers took a core from it."""
    raise_fd_limit()
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, len(names) + 100)
    socks = []
    for name in names:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://127.0.0.1:{port + 1}")
        _register(s, name)
        socks.append(s)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    index = {s: i for i, s in enumerate(socks)}
    # Per worker: the send times of its unanswered heartbeats, oldest first (by sequence);
    # None for a keep-alive sent while the others registered.
    pending: list[deque[float | None]] = [deque() for _ in socks]
    latencies: list[tuple[float, float]] = []      # (latency, seconds into the run)
    counts = {"sent": 0, "acked": 0, "reregister": 0, "registered_again": 0, "errors": 0}
    n = len(socks)
    beat = p.encode(p.Heartbeat(load=0.5, memory_free_mb=16000))
    # Until every worker is registered: read what comes back and keep each worker alive with
    # a heartbeat a second (not timed), so the first to register do not expire meanwhile.
    keepalive = time.monotonic() + 1.0
    settled: float | None = None
    while True:
        if go.is_set():
            settled = settled or time.monotonic() + 10.0
            if not any(pending) or time.monotonic() > settled:
                break
        for s, _ in poller.poll(100):
            while True:
                try:
                    data = s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                i, body = index[s], p.decode(data)[1]
                if pending[i] and isinstance(body, (p.Ack, p.Reregister, p.Error)):
                    pending[i].popleft()
                if isinstance(body, p.Reregister):
                    _register(s, names[i])
        if not go.is_set() and time.monotonic() >= keepalive:
            keepalive += 1.0
            for i, s in enumerate(socks):
                s.send(p.encode(p.Heartbeat(load=0.5, memory_free_mb=16000)))
                pending[i].append(None)      # its answer is read below but not timed
    waiting: set[zmq.Socket] = {s for i, s in enumerate(socks) if pending[i]}
    start = time.monotonic()
    end = start + seconds
    next_i, next_t = 0, start
    # Poll only the sockets awaiting an answer: polling all of thousands each turn would make
    # the simulator, not the supervisor, the bottleneck.
    while True:
        now = time.monotonic()
        sending = now < end
        if not sending and (now >= end + grace or not waiting):
            break
        while sending and now >= next_t:     # spread: worker i beats at start + i/n + k
            s = socks[next_i]
            pending[next_i].append(time.monotonic())
            s.send(beat)
            counts["sent"] += 1
            waiting.add(s)
            next_i += 1
            if next_i == n:
                next_i = 0
            next_t += 1.0 / n
        until = next_t if sending else end + grace
        # Whole milliseconds, at least one: heartbeats due within the next are sent together
        # (a zero timeout would spin, and a simulator burning the CPU starves the supervisor).
        timeout = max(1, math.ceil((until - time.monotonic()) * 1000))
        if not waiting:
            time.sleep(timeout / 1000)
            continue
        for s, _ in zmq.zmq_poll([(s, zmq.POLLIN) for s in waiting], timeout):
            while True:
                try:
                    data = s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                _, body = p.decode(data)
                i = index[s]
                if isinstance(body, p.Registered):
                    counts["registered_again"] += 1
                    continue
                if not isinstance(body, (p.Ack, p.Reregister, p.Error)):
                    continue                 # not an answer to a heartbeat
                if not pending[i]:
                    continue
                sent = pending[i].popleft()
                if sent is None:             # a keep-alive from before the timed run
                    pass
                elif isinstance(body, p.Ack):
                    counts["acked"] += 1
                    latencies.append((time.monotonic() - sent, sent - start))
                elif isinstance(body, p.Reregister):
                    counts["reregister"] += 1
                    _register(s, names[i])
                else:
                    counts["errors"] += 1
                if not pending[i]:
                    waiting.discard(s)
    counts["missing"] = sum(1 for q in pending for t in q if t is not None)
    try:
        done.wait(60)
    except threading.BrokenBarrierError:     # another simulator died: report regardless
        pass
    out.put((latencies, counts))
    for s in socks:
        s.close(0)
    ctx.term()


def watch_down(address: str, stop: threading.Event, seen: dict[str, int]) -> None:
    """Count, from the supervisor's change events, each host that turned DOWN during the run
    (a host that went DOWN and registered again is counted even though it ends UP).  After a
    sequence gap the host list is read once so a transition is not lost.  A host that went DOWN
    and came back within one event batch shows only its last state: the count is a floor, and
    the simulators' re-registration count catches those."""
    events = Events(address)
    client = Client(address, timeout=60)
    state: dict[str, str] = {}

    def note(rows) -> None:
        for h in rows:
            old, state[h["name"]] = state.get(h["name"]), h["state"]
            if h["state"] == "DOWN" and old != "DOWN":
                seen[h["name"]] = seen.get(h["name"], 0) + 1

    note(client.hosts())
    try:
        while not stop.is_set():
            batch = events.receive(0.2, on_gap=lambda: gaps.append(1))
            if batch is not None:
                note(batch.hosts)
                if gaps:
                    gaps.clear()
                    note(client.hosts())
    finally:
        events.close()
        client.close()


gaps: list[int] = []


@click.command()
@click.option("--hosts", type=int, default=5000)
@click.option("--seconds", type=float, default=30.0)
@click.option("--procs", type=int, default=2, help="simulator processes")
@click.option("--db", type=click.Choice(["postgres", "sqlite"]), default="postgres")
@click.option("--grace", type=float, default=2.0, show_default=True,
              help="seconds to wait for the last acks before counting them missing")
@click.option("--host-expiry", type=float, default=5.0, show_default=True,
              help="the supervisor's host expiry (below 1 s, to see the DOWN counting work)")
def main(hosts: int, seconds: float, procs: int, db: str, grace: float,
         host_expiry: float) -> None:
    raise_fd_limit()
    with supervisor(db, "--heartbeat", "1", "--host-expiry", str(host_expiry)) as (sv, client,
                                                                                   port):
        names = [f"bench-{i:05d}" for i in range(hosts)]
        q: mp.Queue = mp.Queue()
        go, done = mp.Event(), mp.Barrier(procs)
        workers = [mp.Process(target=simulate,
                              args=(port, names[k::procs], seconds, grace, q, go, done))
                   for k in range(procs)]
        proc = psutil.Process(sv.pid)
        t_reg = time.monotonic()
        for w in workers:
            w.start()
        while len([h for h in client.hosts() if h["state"] == "UP"]) < hosts:
            time.sleep(0.5)
        registration = time.monotonic() - t_reg
        went_down: dict[str, int] = {}
        stop = threading.Event()
        watcher = threading.Thread(target=watch_down,
                                   args=(f"127.0.0.1:{port}", stop, went_down), daemon=True)
        watcher.start()
        go.set()
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        results = [q.get() for _ in workers]
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        wall = time.monotonic() - t0
        for w in workers:
            w.join()
        rows = client.hosts()
        stop.set()
        watcher.join(10)
        latencies = sorted(x for lat, _ in results for x in lat)
        counts = {k: sum(c[k] for _, c in results) for k in results[0][1]}
        down_now = [h["name"] for h in rows if h["state"] == "DOWN"]
        for name in down_now:                # also DOWN at the end, even if no event said so
            went_down.setdefault(name, 1)

        def pct(q_: float) -> float:
            if not latencies:
                return float("nan")
            return 1000 * latencies[min(len(latencies) - 1, int(q_ * len(latencies)))][0]
        print(f"{db}: {hosts} hosts x 1 report/s for {seconds:g} s: {counts['sent']} sent, "
              f"{counts['acked']} acked, {counts['missing']} acks missing, "
              f"{counts['reregister']} told to re-register ({counts['registered_again']} "
              f"re-registrations), {counts['errors']} errors; "
              f"{counts['acked'] / seconds:.0f} reports/s; ack latency p50 {pct(0.5):.1f} ms, "
              f"p99 {pct(0.99):.1f} ms, max {pct(1.0):.1f} ms "
              f"({latencies[-1][1] if latencies else 0:.1f} s into the run; next "
              f"{', '.join(f'{1000 * a:.0f} ms at {b:.1f} s' for a, b in latencies[-6:-1][::-1])});"
              f" supervisor CPU {100 * cpu / wall:.0f}% of a core; hosts registered {len(rows)};"
              f" DOWN transitions seen during the run {sum(went_down.values())} "
              f"({len(went_down)} hosts), DOWN at the end {len(down_now)}; "
              f"registering all took {registration:.1f} s")
        ok = (not counts["missing"] and not went_down and not counts["reregister"]
              and not counts["errors"])
        print("PASS: every heartbeat acknowledged, no host went DOWN" if ok else
              "FAIL: see the missing acks, re-registrations and DOWN transitions above")


if __name__ == "__main__":
    main()
