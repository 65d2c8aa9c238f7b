"""A lock schedule with purge, against a real supervisor and a real rqd on SQLite and
PostgreSQL: when its window opens, the frames running there are killed and requeued without
spending a retry, and no frame process is left; a window without purge lets them finish."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.farm import marked_processes, used_total, wait_until


def window_now() -> tuple[str, str]:
    """A window open now in UTC, any day (it may run past midnight, which schedules allow)."""
    now = datetime.now(timezone.utc)
    return ((now - timedelta(hours=2)).strftime("%H:%M"),
            (now + timedelta(hours=2)).strftime("%H:%M"))


def test_schedule_lock_with_and_without_purge(farm, tmp_path):
    farm.kill_supervisor()
    farm.env["CUEFARM_SUPERVISOR_TIMEZONE"] = "UTC"
    farm.start_supervisor()
    farm.start_rqd("ws-a", 1)
    farm.start_rqd("ws-b", 1)
    farm.wait_hosts_up(["ws-a", "ws-b"])
    c = farm.client()
    marker = f"sched-{tmp_path.name}"
    [jid] = c.submit([{"name": "night", "layers": [
        {"name": f"on-{h}", "command": "sleep 300", "range": "1", "max_retries": 0,
         "hosts": [f"ws-{h}"], "env": {"MARKER": f"{marker}-{h}"}} for h in "ab"]}])
    wait_until(lambda: c.job(jid)["running"] == 2, 30, message="a frame on each host")
    start, end = window_now()

    c.add_schedule("ws-b", list(range(7)), start, end, purge=False)
    assert used_total(c, "ws-b") == "1/0"          # locked; its frame goes on running
    c.add_schedule("ws-a", list(range(7)), start, end, purge=True)
    wait_until(lambda: used_total(c, "ws-a") == "0/0", 30, message="ws-a purged")
    hosts = {h["name"]: h for h in c.hosts()}
    assert (hosts["ws-a"]["lock"], hosts["ws-a"]["lock_kind"]) == ("LOCKED", "schedule")
    frames = {f["host"]: f for f in c.frames(jid, states=["RUNNING"])}
    assert list(frames) == ["ws-b"]
    waiting = c.frames(jid, states=["WAITING"])
    assert [f["retries"] for f in waiting] == [0]
    wait_until(lambda: not marked_processes(f"{marker}-a"), 30, message="no purged frame process left")
    assert marked_processes(f"{marker}-b")
    assert used_total(c, "ws-b") == "1/0"
    c.kill(jid)
