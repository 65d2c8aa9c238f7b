"""How long `validate_job` takes on large jobs: the check every submit passes through.

Jobs of 10,000 layers (with many keys, and minimal), and of 1,000,000 frames (one layer, and
1,000 layers of 1,000).  Prints the best of --repeat runs of each, in milliseconds.

    python benchmarks/spec_validation.py [--repeat 5]
"""

from __future__ import annotations

import sys
import timeit
from pathlib import Path

import click

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cuefarm.spec import validate_job  # noqa: E402


def cases() -> list[tuple[str, dict, dict]]:
    rich = [{"name": f"l{i}", "command": ["render", "-f", "#FRAME#"], "range": "1-10",
             "chunk": 2, "slots": "2+", "memory": 4096, "tags": ["gpu", "linux"],
             "env": {"A": "1", "B": 2}, "depends_on": [f"l{i - 1}"] if i else [],
             "max_retries": 3, "timeout": 600} for i in range(10_000)]
    plain = [{"name": f"l{i}", "command": "x", "range": "1"} for i in range(10_000)]
    wide = [{"name": f"r{i}", "command": "x", "range": "1-1000"} for i in range(1000)]
    many = {"name": "many", "project": "p", "priority": 60, "layers": rich}
    return [("10,000 layers, many keys, not expanded", many, {"expand": False}),
            ("10,000 layers, many keys", many, {}),
            ("10,000 minimal layers", {"name": "plain", "layers": plain}, {}),
            ("1,000,000 frames in one layer", {"name": "huge", "layers": [
                {"name": "r", "command": "x #FRAME#", "range": "1-1000000"}]}, {}),
            ("1,000,000 frames in 1,000 layers", {"name": "wide", "layers": wide}, {})]


@click.command()
@click.option("--repeat", default=5, show_default=True, help="Runs of each; the best counts.")
def main(repeat: int) -> None:
    for label, job, kw in cases():
        best = min(timeit.repeat(lambda: validate_job(job, **kw), number=1, repeat=repeat))
        click.echo(f"{label}: {best * 1000:.1f} ms")


if __name__ == "__main__":
    main()
