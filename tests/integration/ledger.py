"""Frames that keep a ledger: each run appends its start and end, so tests can prove that no two
runs of one frame overlapped in time, whatever crashed in between."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

SCRIPT = r'''
import os, signal, sys, time
path, duration = sys.argv[1], float(sys.argv[2])
def note(kind):
    line = "%s %s %s %s %.6f %s\n" % (kind, os.environ["CUE_LAYER"], os.environ["CUE_FRAME"],
                                      os.environ["CUE_ATTEMPT"], time.time(),
                                      os.environ["CUE_HOST"])
    with open(path, "a") as f:
        f.write(line)
def killed(signum, frame):
    note("killed")      # the run ends here: a rerun may start after this
    os._exit(143)
signal.signal(signal.SIGTERM, killed)
note("start")
print("frame", os.environ["CUE_FRAME"], "on", os.environ["CUE_HOST"], flush=True)
time.sleep(duration)
gate = sys.argv[3] if len(sys.argv) > 3 else ""
while gate and not os.path.exists(gate):     # held until the test opens the gate
    time.sleep(0.05)
note("end")
'''


def command(tmp_path: Path, duration: float, gate: Path | None = None
            ) -> tuple[list[str], Path]:
    """A frame command that runs `duration` seconds (and, given a `gate`, until that file
    exists), and the ledger it writes."""
    script = tmp_path / "ledger_frame.py"
    script.write_text(SCRIPT)
    ledger = tmp_path / "ledger.txt"
    return ([sys.executable, str(script), str(ledger), str(duration),
             *([str(gate)] if gate else [])], ledger)


def runs(ledger: Path) -> dict[tuple[str, int], list[tuple[float, float]]]:
    """(layer, frame) -> [(start, end)] per attempt; end is infinity when it never ended."""
    starts: dict[str, tuple[str, int, float]] = {}
    ends: dict[str, float] = {}
    for line in ledger.read_text().splitlines():
        kind, layer, frame, attempt, t, host = line.split()
        if kind == "start":
            starts[attempt] = (layer, int(frame), float(t))
        else:
            ends[attempt] = float(t)
    out: dict[tuple[str, int], list[tuple[float, float]]] = defaultdict(list)
    for attempt, (layer, frame, t0) in starts.items():
        out[(layer, frame)].append((t0, ends.get(attempt, float("inf"))))
    return out


def attempts(ledger: Path) -> dict[str, dict]:
    """attempt id -> {layer, frame, start, end, how, host}; how is "end", "killed" or None (no end
    written: still running, or killed without a chance to say so)."""
    out: dict[str, dict] = {}
    if not ledger.exists():          # no frame started yet
        return out
    for line in ledger.read_text().splitlines():
        kind, layer, frame, attempt, t, host = line.split()
        if kind == "start":
            out[attempt] = {"layer": layer, "frame": int(frame), "start": float(t),
                            "end": float("inf"), "how": None, "host": host}
        elif attempt in out:
            out[attempt].update(end=float(t), how=kind)
    return out


def assert_no_overlap(ledger: Path) -> dict[tuple[str, int], list[tuple[float, float]]]:
    by_frame = runs(ledger)
    for key, intervals in by_frame.items():
        intervals.sort()
        for (s1, e1), (s2, e2) in zip(intervals, intervals[1:]):
            assert e1 <= s2, f"two runs of {key} overlapped: {s1}-{e1} and {s2}-{e2}"
    return by_frame
