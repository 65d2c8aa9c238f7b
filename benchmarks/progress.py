"""What reading frames' progress costs rqd (rqd.progress), per heartbeat and per byte of output.

Prints:
- a look at the log of a frame that printed nothing since the last heartbeat (one stat), next
  to what rqd already spends per running frame per heartbeat measuring its process tree;
- a look at a log that gained a few Blender status lines, and one that gained a flood;
- the parser's throughput on real Blender output and on output without progress lines.

    python benchmarks/progress.py [--looks 20000]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rqd import machine  # noqa: E402
from rqd.progress import MAX_READ, ProgressParser, ProgressReader  # noqa: E402

BLENDER = ROOT / "tests" / "rqd" / "blender" / "cycles_chunk_1-3.txt"


def per_call(fn, n: int) -> float:
    """Microseconds per call of `fn`, over `n` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


@click.command()
@click.option("--looks", default=20_000, show_default=True, help="Looks per measurement.")
def main(looks: int) -> None:
    blender = BLENDER.read_bytes()
    lines = blender.splitlines(keepends=True)
    status = b"".join(line for line in lines if line.startswith(b"Fra:"))[:2048]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "1.1.log"
        log.write_bytes(b"header\n" * 40)

        silent = ProgressReader(log, log.stat().st_size, 1, 3, "1-3")
        print(f"silent frame, one look:          {per_call(silent.poll, looks):8.2f} us")

        # What rqd spends anyway on each running frame at each heartbeat: its process tree.
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            proc = psutil.Process(child.pid)
            tree = per_call(lambda: machine.sample_tree(proc), max(1, looks // 10))
        finally:
            child.kill()
            child.wait()
        print(f"process tree sample (as before): {tree:8.2f} us")

        growing = ProgressReader(log, log.stat().st_size, 1, 3, "1-3")
        with open(log, "ab", buffering=0) as f:
            def few_lines():
                f.write(status)
                growing.poll()
            print(f"look at {len(status)} new bytes:       "
                  f"{per_call(few_lines, max(1, looks // 10)):8.2f} us")

            flood = b"noise from a chatty renderer\n" * (4 * MAX_READ // 29)

            def flooded():
                f.write(flood)
                growing.poll()
            print(f"look at {len(flood) // 1024} KiB new (tail read):  "
                  f"{per_call(flooded, 200):8.2f} us")

    for name, data in (("real Blender output", blender),
                       ("output without progress lines", b"rendering tile 12 of 64\n" * 600)):
        parser = ProgressParser(1, 3, "1-3")
        n = max(1, (8 << 20) // len(data))
        start = time.perf_counter()
        for _ in range(n):
            parser.feed(data)
        mb_s = n * len(data) / (time.perf_counter() - start) / 1e6
        print(f"parser, {name}: {mb_s:10.1f} MB/s")
    print(f"(cpu: {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
