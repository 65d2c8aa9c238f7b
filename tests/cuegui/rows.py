"""Row dicts shaped like the supervisor's, for model and view tests."""

from __future__ import annotations

import time

NOW = time.time()


def job(i: int, **kw) -> dict:
    row = {"id": i, "name": f"job_{i:03d}", "project": "proj", "user": "ann", "priority": 50,
           "state": "ACTIVE", "status": "waiting", "submitted_at": NOW - 1000 + i,
           "started_at": None, "finished_at": None, "frames_total": 10, "waiting": 10,
           "depend": 0, "running": 0, "succeeded": 0, "dead": 0, "eaten": 0, "slots_used": 0,
           "stalled": False}
    row.update(kw)
    return row


def frame(i: int, job_id: int = 1, **kw) -> dict:
    row = {"id": i, "job_id": job_id, "layer_id": 1, "layer": "render", "number": i,
           "frames": str(i), "frame_start": i, "frame_end": i, "state": "WAITING", "host": None,
           "attempt": 0, "attempt_id": None, "started_at": None, "stopped_at": None,
           "runtime": None, "peak_rss": 0, "cpu_time": 0.0, "exit_status": None, "retries": 0}
    row.update(kw)
    return row


def host(i: int, **kw) -> dict:
    row = {"id": i, "name": f"render{i:02d}", "hostname": f"render{i:02d}.example", "os": "linux",
           "cores": 16, "memory_mb": 65536, "memory_free_mb": 40000, "state": "UP",
           "lock": "OPEN", "slots_total": 16, "slots_configured": 16, "slots_used": 0,
           "load": 1.5, "cpu_percent": 10.0, "last_seen": NOW, "running": 0}
    row.update(kw)
    return row


def layer(i: int, job_id: int = 1, **kw) -> dict:
    row = {"id": i, "job_id": job_id, "name": f"layer{i}", "command": ["render", "-f", "#"],
           "range": "1-10", "chunk": 1, "slots": 1, "memory": 0, "max_retries": 1,
           "depends_on": [], "frames_total": 10, "waiting": 10, "depend": 0, "running": 0,
           "succeeded": 0, "dead": 0, "eaten": 0}
    row.update(kw)
    return row
