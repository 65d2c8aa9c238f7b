"""Kill -9 at 20 points of a run, on SQLite and on PostgreSQL.

A 1,000-frame job of short frames that write a ledger (tests/integration/ledger.py) runs on
three real rqd.  The supervisor is killed with SIGKILL at --kills evenly spread points of its
progress and started again; in a second run on a fresh database, random workers are killed
with SIGKILL --worker-kills times and started again.  Prints, per run: overlapping runs of one
frame, lost frames, retries charged, and the longest time from a supervisor restart to the
next frame launch (goals: 0, 0, 0, < 5 s).

    python benchmarks/crash_points.py [--db sqlite|postgres|both] [--frames 1000] [--kills 20]
        [--worker-kills 10] [--seed N]
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import hostile  # noqa: E402
from tests.farm import PostgresDatabase, running_farm  # noqa: E402
from tests.integration import crashes  # noqa: E402


def one(kind: str, frames: int, kills: int, worker_kills: int, seed: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-crash-"))
    db = PostgresDatabase() if kind == "postgres" else None
    url = db.url if db else f"sqlite:///{tmp / 'crash.db'}"
    try:
        with running_farm(url, tmp, host_expiry=5.0, release_after=20.0) as farm:
            return crashes.run(farm, tmp, frames, kills, worker_kills, seed, timeout=1800)
    finally:
        if db:
            db.drop()
        shutil.rmtree(tmp, ignore_errors=True)


@click.command()
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both",
              show_default=True)
@click.option("--frames", default=1000, show_default=True)
@click.option("--kills", default=20, show_default=True, help="supervisor kills")
@click.option("--worker-kills", default=10, show_default=True)
@click.option("--seed", type=int, default=None, help="default: CUEFARM_CRASH_SEED or random")
def main(db: str, frames: int, kills: int, worker_kills: int, seed: int | None) -> None:
    if seed is not None:
        os.environ["CUEFARM_CRASH_SEED"] = str(seed)
    seed = hostile.seed_from_env("CUEFARM_CRASH_SEED")
    for kind in (["sqlite", "postgres"] if db == "both" else [db]):
        for label, sk, wk in (("supervisor kills", kills, 0), ("worker kills", 0, worker_kills)):
            if sk + wk == 0:
                continue
            print(f"{kind}, {frames} frames, {sk + wk} {label}:", flush=True)
            f = one(kind, frames, sk, wk, seed)
            print(f"{kind} {label}: overlaps={f['overlaps']} lost={f['lost']} "
                  f"retries_charged={f['retries']} attempts={f['attempts']} "
                  + (f"longest_restart_to_launch={f['restart_to_launch']:.2f} s " if sk else "")
                  + f"run={f['seconds']:.0f} s (goals: 0, 0, 0, < 5 s)", flush=True)


if __name__ == "__main__":
    main()
