"""The long fuzz run: --count hostile messages of each category (tests/hostile.py) to the
supervisor's client API and worker link, and to a real rqd from a hostile "supervisor".

Prints, per target, messages sent, crashes (the process exited; it is restarted and the run
goes on), hangs (a client message not answered within --hang seconds), and RSS growth over the
run.  The seed is printed; --seed (or CUEFARM_FUZZ_SEED) replays a run.

    python benchmarks/fuzz.py [--count 100000] [--seed N] [--target supervisor|rqd|both]
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

import click
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cuefarm import protocol as p  # noqa: E402
from rqd.daemon import SUPERVISOR_MESSAGES  # noqa: E402
from tests import hostile  # noqa: E402
from tests.farm import Farm, free_port_block  # noqa: E402

BATCH = 200


def _dealer(port: int) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s


def _rss(proc) -> int:
    try:
        return psutil.Process(proc.pid).memory_info().rss
    except psutil.Error:
        return 0


def run_supervisor(seed: int, count: int, hang: float, tmp: Path) -> None:
    rnd = random.Random(seed)
    farm = Farm(f"sqlite:///{tmp / 'fuzz.db'}", tmp)
    farm.start_supervisor()
    client_msgs = hostile.Messages(p.CLIENT_REQUESTS, rnd, keep_out=hostile.CLIENT_KEEP_OUT)
    worker_msgs = hostile.Messages(p.WORKER_MESSAGES, rnd, fixed={"name": "fuzz-worker"})
    crashes = hangs = sent = 0
    rss0 = peak = _rss(farm.supervisor)
    t0 = time.monotonic()
    try:
        for category in hostile.CATEGORIES:
            cs, ws = _dealer(farm.port), _dealer(farm.port + 1)
            done = 0
            while done < count:
                n = min(BATCH, count - done)
                for _ in range(n):
                    cs.send(client_msgs.make(category))
                    ws.send(worker_msgs.make(category))
                done += n
                sent += 2 * n
                got = 0
                while got < n and cs.poll(int(hang * 1000)):
                    cs.recv()
                    got += 1
                while ws.poll(0):
                    ws.recv()
                if farm.supervisor.poll() is not None:
                    crashes += 1
                    print(f"CRASH on {category} (seed {seed}):\n{farm.supervisor_log()}")
                    farm.start_supervisor()
                elif got < n:
                    hangs += 1
                    print(f"HANG on {category}: {n - got} of {n} not answered in {hang:g} s")
                peak = max(peak, _rss(farm.supervisor))
            cs.close(0)
            ws.close(0)
            print(f"  supervisor {category}: {done} x 2 sockets, rss now "
                  f"{_rss(farm.supervisor) / 2**20:.0f} MB", flush=True)
        end = _rss(farm.supervisor)
    finally:
        farm.stop()
    print(f"supervisor: sent={sent} crashes={crashes} hangs={hangs} "
          f"rss start={rss0 / 2**20:.0f} MB peak={peak / 2**20:.0f} MB "
          f"growth={(peak - rss0) / 2**20:.0f} MB end={end / 2**20:.0f} MB "
          f"time={time.monotonic() - t0:.0f} s")


def run_rqd(seed: int, count: int, hang: float, tmp: Path) -> None:
    rnd = random.Random(seed)
    farm = Farm(f"sqlite:///{tmp / 'rqd.db'}", tmp)
    farm.port = free_port_block()
    farm.address = f"127.0.0.1:{farm.port}"
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.bind(f"tcp://127.0.0.1:{farm.port + 1}")
    msgs = hostile.Messages(SUPERVISOR_MESSAGES, rnd, user="", keep_out=hostile.RQD_KEEP_OUT)
    crashes = hangs = sent = 0
    t0 = time.monotonic()

    def start():
        proc = farm.start_rqd("fuzzed", 2)
        if not router.poll(30_000):
            raise SystemExit("rqd never connected")
        return proc, router.recv_multipart()[0]
    proc, identity = start()
    rss0 = peak = _rss(proc)
    token = 0
    try:
        for category in hostile.CATEGORIES:
            done = 0
            while done < count:
                n = min(BATCH, count - done)
                for _ in range(n):
                    router.send_multipart([identity, msgs.make(category)])
                done += n
                sent += n
                # A log request rqd always answers: its answer shows it read the batch.
                token += 1
                router.send_multipart([identity, p.encode(p.LogRequest(token, "none"))])
                answered = False
                deadline = time.monotonic() + hang
                while not answered and time.monotonic() < deadline:
                    if not router.poll(100):
                        if proc.poll() is not None:
                            break
                        continue
                    _, data = router.recv_multipart()
                    try:
                        body = p.decode(data)[1]
                    except p.ProtocolError:
                        continue
                    answered = isinstance(body, p.LogReply) and body.token == token
                if proc.poll() is not None:
                    crashes += 1
                    print(f"CRASH of rqd on {category} (seed {seed})")
                    proc, identity = start()
                elif not answered:
                    hangs += 1
                    print(f"HANG of rqd on {category}: no answer in {hang:g} s")
                peak = max(peak, _rss(proc))
            print(f"  rqd {category}: {done}", flush=True)
    finally:
        router.close(0)
        farm.stop()
    print(f"rqd: sent={sent} crashes={crashes} hangs={hangs} "
          f"rss start={rss0 / 2**20:.0f} MB peak={peak / 2**20:.0f} MB "
          f"growth={(peak - rss0) / 2**20:.0f} MB time={time.monotonic() - t0:.0f} s")


@click.command()
@click.option("--count", default=100_000, show_default=True, help="messages per category")
@click.option("--seed", type=int, default=None, help="default: CUEFARM_FUZZ_SEED or random")
@click.option("--target", type=click.Choice(["supervisor", "rqd", "both"]), default="both",
              show_default=True)
@click.option("--hang", default=30.0, show_default=True,
              help="seconds without an answer that count as a hang")
def main(count: int, seed: int | None, target: str, hang: float) -> None:
    if seed is not None:
        os.environ["CUEFARM_FUZZ_SEED"] = str(seed)
    seed = hostile.seed_from_env()
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-fuzz-"))
    print(f"count={count} per category, {len(hostile.CATEGORIES)} categories; work dir {tmp}")
    if target in ("supervisor", "both"):
        run_supervisor(seed, count, hang, tmp)
    if target in ("rqd", "both"):
        run_rqd(seed, count, hang, tmp)


if __name__ == "__main__":
    main()
