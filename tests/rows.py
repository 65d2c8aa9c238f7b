"""Rows shaped as the supervisor sends them (`cuefarm.rows`), for model and view tests: every
key a real row has, and no other (a key the real rows lack, or a value of the wrong type, is
an error here too)."""

from __future__ import annotations

import time

from cuefarm.rows import FrameRow, HostRow, JobRow, LayerRow, RunningFrameRow, sample

NOW = time.time()


def job(i: int, **kw) -> dict:
    return sample(JobRow, **{
        "id": i, "name": f"job_{i:03d}", "project": "proj", "user": "ann", "priority": 50,
        "state": "ACTIVE", "killed": False, "status": "waiting", "submitted_at": NOW - 1000 + i,
        "started_at": None, "finished_at": None, "frames_total": 10, "min_slots": 0,
        "max_slots": None, "flagged": "", "slots_used": 0, "waiting": 10, "depend": 0,
        "running": 0, "succeeded": 0, "dead": 0, "eaten": 0, "stalled": False, "comments": 0,
        **kw})


def frame(i: int, job_id: int = 1, **kw) -> dict:
    """A frame row; given `job_name` or `slots`, one of a host's running frames."""
    kind = RunningFrameRow if "job_name" in kw or "slots" in kw else FrameRow
    extra = {"job_name": f"job_{job_id:03d}", "slots": 1} if kind is RunningFrameRow else {}
    return sample(kind, **{
        "id": i, "job_id": job_id, "layer_id": 1, "layer": "render", "number": i,
        "frames": str(i), "frame_start": i, "frame_end": i, "state": "WAITING", "host": None,
        "attempt": 0, "attempt_id": None, "attempt_state": None, "started_at": None,
        "stopped_at": None, "runtime": None, "peak_rss": 0, "cpu_time": 0.0,
        "exit_status": None, "retries": 0, "reason": "", "progress": None, **extra, **kw})


def host(i: int, **kw) -> dict:
    return sample(HostRow, **{
        "id": i, "name": f"render{i:02d}", "hostname": f"render{i:02d}.example", "address": "",
        "os": "linux", "cores": 16, "memory_mb": 65536, "memory_free_mb": 40000,
        "disk_free_mb": 100_000, "gpus": 0, "tags": [], "state": "UP", "lock": "OPEN",
        "lock_kind": "", "lock_slots": None, "nimby": False, "draining": False, "drain": None,
        "slots": 16, "slots_configured": 16, "slots_override": None, "slots_total": 16,
        "slots_used": 0, "running": 0, "load": 1.5, "cpu_percent": 10.0, "last_seen": NOW,
        "comments": 0, **kw})


def layer(i: int, job_id: int = 1, **kw) -> dict:
    return sample(LayerRow, **{
        "id": i, "job_id": job_id, "name": f"layer{i}", "command": ["render", "-f", "#"],
        "range": "1-10", "chunk": 1, "slots": 1, "slots_mode": "fixed", "memory": 0, "gpus": 0,
        "max_retries": 1, "depends_on": [], "tags": [], "os": None, "hosts": [],
        "omit_hosts": [], "requirements": None, "limits": [], "timeout": 0,
        "timeout_no_output": 0, "frames_total": 10, "slots_running": 0, "waiting": 10,
        "depend": 0, "running": 0, "succeeded": 0, "dead": 0, "eaten": 0, **kw})
