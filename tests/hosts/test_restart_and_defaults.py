"""Host settings survive a supervisor restart on the same database (SQLite and PostgreSQL),
named-only admission refuses an unlisted host until it is admitted, and rqd without --slots
offers one slot per core.  Real supervisor and rqd processes."""

from __future__ import annotations

import subprocess

import psutil

from tests.farm import PYTHON, hosts_by_name, wait_until


def start_rqd_without_slots(farm, name: str) -> subprocess.Popen:
    """rqd as an admin would start it, with no --slots (farm.start_rqd always passes one)."""
    log = open(farm.workdir / f"rqd-{name}.log", "ab")
    proc = subprocess.Popen(
        [PYTHON, "-m", "rqd", "--supervisor", farm.address, "--name", name,
         "--state-dir", str(farm.workdir / "rqd" / name), "--min-uid", "0"],
        stdout=log, stderr=subprocess.STDOUT, env=farm.env)
    log.close()
    farm.workers[name] = proc
    return proc


def settings(c) -> dict:
    hs = hosts_by_name(c)
    return {"hosts": {n: (h["lock"], h["lock_kind"], h["slots_total"], h["tags"])
                      for n, h in hs.items()},
            "admission": c.set_admission(),
            "schedules": [(s["target"], s["days"], s["start"], s["end"], s["purge"])
                          for s in c.schedules()]}


def test_settings_survive_a_restart_and_named_admission(farm):
    farm.kill_supervisor()
    farm.env["CUEFARM_SUPERVISOR_ADMISSION_RETRY"] = "1"
    farm.start_supervisor()
    for name in ("w1", "w2", "w3"):
        farm.start_rqd(name, 4)
    farm.wait_hosts_up(["w1", "w2", "w3"])
    c = farm.client()
    c.lock("w1")
    c.lock("w2", slots=1)
    c.set_host_slots("w3", 3)
    c.host_tags("w3", add=["gpu"], remove=["linux"])
    c.admit(["w1", "w2", "w3"])
    c.set_admission(mode="named")
    c.add_schedule("nobody-*", [5, 6], "01:00", "05:00", purge=True)
    before = settings(c)
    assert before["hosts"]["w1"][:3] == ("LOCKED", "manual", 0)
    assert before["hosts"]["w2"][:3] == ("LOCKED", "manual", 1)
    assert before["hosts"]["w3"][:3] == ("OPEN", "", 3)
    assert "gpu" in before["hosts"]["w3"][3] and "linux" not in before["hosts"]["w3"][3]
    assert before["admission"]["mode"] == "named"

    farm.kill_supervisor()
    farm.start_supervisor()
    c = farm.client()
    farm.wait_hosts_up(["w1", "w2", "w3"])          # admitted by name, so accepted again
    assert settings(c) == before

    # Named-only: an unlisted host is refused and waits in the pending list until admitted.
    start_rqd_without_slots(farm, "newbie")
    wait_until(lambda: any(r["name"] == "newbie" and r["state"] == "pending"
                           for r in c.admission()), 30, message="newbie pending")
    assert "newbie" not in hosts_by_name(c)
    c.admit("newbie")
    farm.wait_hosts_up(["newbie"])
    # No --slots: one slot per core.
    assert hosts_by_name(c)["newbie"]["slots_total"] == psutil.cpu_count()
    assert hosts_by_name(c)["newbie"]["cores"] == psutil.cpu_count()
