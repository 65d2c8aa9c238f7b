"""Old frame logs are removed, never those of attempts still running or unacknowledged."""

from __future__ import annotations

import os
import sys
import time

from cuefarm import protocol as p
from rqd import logs

PY = sys.executable
DAY = 86400.0


def _log(directory, name: str, age_days: float, size: int = 100):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.log"
    path.write_bytes(b"x" * size)
    t = time.time() - age_days * DAY
    os.utime(path, (t, t))
    return path


def test_prune_by_age_and_by_size(tmp_path):
    root = tmp_path / "logs"
    old = _log(root / "farmA", "1.1", 40)
    kept_running = _log(root / "farmA", "2.1", 50)
    recent = _log(root / "farmA", "3.1", 1)
    other_farm = _log(root / "farmB", "1.1", 45)
    not_a_log = root / "farmA" / "notes.txt"
    not_a_log.write_text("keep me")
    os.utime(not_a_log, (0, 0))
    removed, freed = logs.prune(root, time.time() - 30 * DAY, {"2.1"})
    assert (removed, freed) == (2, 200)
    assert not old.exists() and not other_farm.exists()
    assert kept_running.exists() and recent.exists() and not_a_log.exists()
    # A size cap removes the oldest first, still never a kept one.
    a = _log(root / "farmA", "4.1", 3, size=1000)
    b = _log(root / "farmA", "5.1", 2, size=1000)
    removed, _ = logs.prune(root, -1e18, {"2.1"}, max_bytes=1200)
    assert removed == 1 and not a.exists() and b.exists() and recent.exists()
    assert kept_running.exists()


def test_a_running_rqd_prunes_its_old_logs(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor, config="log_keep_days = 7\nlog_prune_every = 1\n")
    supervisor.register()
    log_dir = rqd.state_dir / "logs"
    stale = _log(log_dir, "90.1", 10)
    # Running for longer than a pruning interval: its log stays, as does an unacked one's.
    supervisor.send(helpers.launch("91.1", [PY, "-c", "import time; time.sleep(60)"]))
    supervisor.expect("heartbeat", lambda b: "91.1" in helpers.running_ids(b))
    supervisor.send(helpers.launch("92.1", [PY, "-c", "pass"]))
    supervisor.completion("92.1")
    for name in ("91.1", "92.1"):       # made to look old
        path = log_dir / f"{name}.log"
        os.utime(path, (time.time() - 20 * DAY,) * 2)
    helpers.wait_until(lambda: not stale.exists(), message="the stale log removed")
    supervisor.pump(2.5)                 # further prunings
    assert (log_dir / "91.1.log").exists() and (log_dir / "92.1.log").exists()
    supervisor.send(p.Kill(["91.1"], "done"))
    supervisor.completion("91.1")
