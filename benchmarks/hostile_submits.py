"""Submits shaped to hold the supervisor's loop: per shape, how long the answer took, what it
was, and the longest loop turn the supervisor logged meanwhile (it logs every turn over
100 ms; goal: none, or only the decoding of the largest messages).

    python benchmarks/hostile_submits.py [--db sqlite|postgres]
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cuefarm import Client, CueFarmError  # noqa: E402
from tests.farm import Farm, PostgresDatabase  # noqa: E402

TURN = re.compile(r"a loop turn took (\d+) ms \(([^)]*)\)")


def _layer(**changes) -> dict:
    return {"name": "r", "command": ["true"], "range": "1-5", **changes}


def _job(name: str = "j", **changes) -> dict:
    return {"name": name, "project": "bench", "layers": [_layer()], **changes}


SHAPES = {
    "10 MB list of frames": lambda: [_job(layers=[_layer(range=",".join(["1"] * 5_000_000))])],
    "1,000 layers of 2 KB lists": lambda: [_job(layers=[
        _layer(name=f"r{i}", range=",".join(["1"] * 1_000)) for i in range(1_000)])],
    "100 jobs of 1,000,000 frames": lambda: [
        _job(f"j{i}", layers=[_layer(range="1-1000000")]) for i in range(100)],
    "1,000,000 empty jobs": lambda: [{}] * 1_000_000,
    "15 MB of environment": lambda: [_job(layers=[
        _layer(name=f"r{i}", env={"BIG": "x" * 120_000}) for i in range(125)])],
    "a 100 MB variable": lambda: [_job(layers=[_layer(env={"BIG": "x" * 100_000_000})])],
    "16 M empty items": lambda: [_job(junk=[None] * 16_000_000)],
    "5,000 jobs": lambda: [_job(f"j{i}") for i in range(5_000)],
}


@click.command()
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="sqlite",
              show_default=True)
def main(db: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-hostile-"))
    pg = PostgresDatabase() if db == "postgres" else None
    farm = Farm(pg.url if pg else f"sqlite:///{tmp / 'hostile.db'}", tmp)
    farm.start_supervisor()
    try:
        c = Client(farm.address, timeout=600)
        c.jobs()
        log = farm.workdir / "supervisor.log"
        for name, make in SHAPES.items():
            jobs = make()
            log_start = log.stat().st_size
            t0 = time.monotonic()
            try:
                answer = f"stored {len(c.submit(jobs))} job(s)"
            except CueFarmError as exc:
                answer = f"{exc.code}: {str(exc)[:90]}"
            took = time.monotonic() - t0
            del jobs
            time.sleep(1)           # the turns that answer and free it
            text = log.read_bytes()[log_start:].decode(errors="replace")
            turns = [(int(ms), why) for ms, why in TURN.findall(text)]
            longest = max(turns, default=(0, "none over 100 ms"))
            print(f"{name}: answered in {took:.1f} s ({answer}); loop turns over 100 ms: "
                  f"{len(turns)}, longest {longest[0]} ms ({longest[1]})", flush=True)
        print("supervisor still answers:", c.ping()["version"])
    finally:
        farm.stop()
        if pg:
            pg.drop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
