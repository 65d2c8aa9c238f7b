"""Host reports at studio scale: N simulated workers heartbeating once per second.

Starts a real supervisor (PostgreSQL by default) and simulated workers in separate processes
(real protocol, one DEALER socket per worker, heartbeats spread evenly over each second), runs
for a while and prints heartbeat acknowledgement latency (p50/p99/max as the workers saw it),
reports/s handled, supervisor CPU, and how many hosts the supervisor marked DOWN (should be 0).

    python benchmarks/host_reports.py [--hosts 5000] [--seconds 30] [--db postgres|sqlite]
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
from pathlib import Path

import click
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cuefarm  # noqa: E402
from benchmarks.benchfarm import supervisor  # noqa: E402
from cuefarm import protocol as p  # noqa: E402


def raise_fd_limit() -> None:
    """One socket per simulated worker: lift the soft file limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def simulate(port: int, names: list[str], seconds: float, out: mp.Queue, go) -> None:
    """One process of simulated workers: register, then heartbeat each once per second."""
    raise_fd_limit()
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, len(names) + 100)
    socks = []
    for name in names:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(f"tcp://127.0.0.1:{port + 1}")
        s.send(p.encode(p.Register(name=name, hostname=name, os="linux", cores=8,
                                   memory_mb=32000, slots=8, version=cuefarm.__version__)))
        socks.append(s)
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    index = {s: i for i, s in enumerate(socks)}
    sent_at = [0.0] * len(socks)
    latencies: list[float] = []
    n = len(socks)
    while not go.is_set():                   # registration: answer it, nothing else yet
        for s, _ in poller.poll(100):
            while True:
                try:
                    s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
    start = time.monotonic()
    end = start + seconds
    next_i, next_t = 0, start
    # Poll only the sockets awaiting an ack: polling all of thousands each turn would make the
    # simulator, not the supervisor, the bottleneck.
    waiting: dict[zmq.Socket, int] = {}
    while True:
        now = time.monotonic()
        if now >= end:
            break
        while now >= next_t:                 # spread: worker i beats at start + i/n + k
            s = socks[next_i]
            sent_at[next_i] = time.monotonic()
            s.send(p.encode(p.Heartbeat(load=0.5, memory_free_mb=16000)))
            waiting[s] = next_i
            next_i += 1
            if next_i == n:
                next_i = 0
            next_t += 1.0 / n
        timeout = max(0, int((next_t - time.monotonic()) * 1000))
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
                if isinstance(body, p.Ack):
                    if sent_at[i]:
                        latencies.append(time.monotonic() - sent_at[i])
                        sent_at[i] = 0.0
                        waiting.pop(s, None)
                elif isinstance(body, p.Reregister):
                    name = names[i]
                    s.send(p.encode(p.Register(name=name, hostname=name, os="linux", cores=8,
                                               memory_mb=32000, slots=8,
                                               version=cuefarm.__version__)))
    out.put(latencies)
    for s in socks:
        s.close(0)
    ctx.term()


@click.command()
@click.option("--hosts", type=int, default=5000)
@click.option("--seconds", type=float, default=30.0)
@click.option("--procs", type=int, default=2, help="simulator processes")
@click.option("--db", type=click.Choice(["postgres", "sqlite"]), default="postgres")
def main(hosts: int, seconds: float, procs: int, db: str) -> None:
    raise_fd_limit()
    with supervisor(db, "--heartbeat", "1", "--host-expiry", "5") as (sv, client, port):
        names = [f"bench-{i:05d}" for i in range(hosts)]
        q: mp.Queue = mp.Queue()
        go = mp.Event()
        workers = [mp.Process(target=simulate, args=(port, names[k::procs], seconds, q, go))
                   for k in range(procs)]
        proc = psutil.Process(sv.pid)
        t_reg = time.monotonic()
        for w in workers:
            w.start()
        while len([h for h in client.hosts() if h["state"] == "UP"]) < hosts:
            time.sleep(0.5)
        registration = time.monotonic() - t_reg
        go.set()
        cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
        latencies = [x for _ in workers for x in q.get()]
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        wall = time.monotonic() - t0
        for w in workers:
            w.join()
        rows = client.hosts()
        down = [h["name"] for h in rows if h["state"] == "DOWN"]
        latencies.sort()

        def pct(q_: float) -> float:
            return 1000 * latencies[min(len(latencies) - 1, int(q_ * len(latencies)))]
        print(f"{db}: {hosts} hosts x 1 report/s for {seconds:g} s: {len(latencies)} acks, "
              f"{len(latencies) / seconds:.0f} reports/s; ack latency p50 {pct(0.5):.1f} ms, "
              f"p99 {pct(0.99):.1f} ms, max {1000 * latencies[-1]:.1f} ms; supervisor CPU "
              f"{100 * cpu / wall:.0f}% of a core; hosts registered {len(rows)}, falsely DOWN "
              f"{len(down)}; registering all took {registration:.1f} s")


if __name__ == "__main__":
    main()
