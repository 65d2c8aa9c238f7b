"""Retention: old finished jobs written to archive files and deleted, usage figures kept,
jobs restored read-only; on SQLite and PostgreSQL, through the command line."""

from __future__ import annotations

import datetime
import gzip
import json
import signal

import pytest

from cuefarm import CueFarmError
from tests.farm import wait_until

RETAIN = {"CUEFARM_RETENTION_FINISHED_JOB_DAYS": "0.0000001",    # 9 ms
          "CUEFARM_SUPERVISOR_USAGE_INTERVAL": "0.3"}


def restart(farm, **env: str):
    farm.kill_supervisor(signal.SIGTERM)
    farm.env.update(env)
    farm.env["CUEFARM_RETENTION_DIRECTORY"] = str(farm.workdir / "archive")
    farm.start_supervisor()
    return farm


def run_jobs(farm, tmp_path) -> list[int]:
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    client = farm.client()
    client.set_limit("lic", 3)
    [a] = client.submit([{"name": "old-a", "project": "keep", "notify": [
        {"when": ["finished"], "webhook": "http://127.0.0.1:9/none"}], "layers": [
        {"name": "sim", "command": ["true"], "range": "1-6", "chunk": 2, "limits": ["lic"]},
        {"name": "comp", "command": ["true"], "range": "1-6",
         "depends_on": [{"layer": "sim", "per_frame": True}], "env": {"X": "1"}}]}])
    [b] = client.submit([{"name": "old-b", "layers": [
        {"name": "fail", "command": ["sh", "-c", "exit 1"], "range": "1", "max_retries": 1}]}])
    for job in (a, b):
        wait_until(lambda: client.job(job)["state"] == "FINISHED"
                   or client.job(job)["stalled"], 120, message=f"job {job}")
    client.eat(b)            # dead frames eaten: the job is finished
    wait_until(lambda: client.job(b)["state"] == "FINISHED", 30, message="job b finished")
    return [a, b]


def snapshot(client, job_id):
    frames = [{k: v for k, v in f.items()} for f in client.frames(job_id)]
    return client.job(job_id), client.layers(job_id), frames, client.export(job_id)


def test_archive_and_restore_through_the_cli(farm, tmp_path):
    farm = restart(farm, **RETAIN)
    ids = run_jobs(farm, tmp_path)
    client = farm.client()
    before = {j: snapshot(client, j) for j in ids}
    today = datetime.date.today()
    week = (today - datetime.timedelta(days=1), today + datetime.timedelta(days=1))

    def usage():
        return {r["project"]: (r["succeeded"], r["failed"]) for r in client.usage(*week)}

    # Usage accounting counts every attempt before its job may go.
    wait_until(lambda: [sum(x) for x in zip(*usage().values())] == [9, 2], 30,
               message="usage counted")
    counted = usage()
    live = client.submit([{"name": "live", "layers": [
        {"name": "a", "command": ["sleep", "30"], "range": "1"}]}])[0]

    dry = farm.cli("archive", "run", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.strip() == "would archive 2 job(s), 10 frame(s)"
    assert {j["id"] for j in client.jobs()} == {live, *ids}       # nothing went
    result = farm.cli("archive", "run")
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    assert result.stdout.strip() == "archived 2 job(s)"
    assert {j["id"] for j in client.jobs()} == {live}
    for job in ids:
        with pytest.raises(CueFarmError, match="no job"):
            client.job(job)
    assert usage() == counted                      # billing's figures stay

    listed = json.loads(farm.cli("archive", "list", "--json").stdout)
    [entry] = listed
    assert sorted(entry["job_ids"]) == sorted(ids) and entry["error"] == ""
    path = farm.workdir / "archive" / entry["file"]
    with gzip.open(path, "rt") as f:
        tables = {json.loads(line).get("t") for line in list(f)[1:]}
    assert {"job", "layer", "frame", "frame_dep", "attempt", "layer_limit",
            "job_notify"} <= tables
    assert entry["file"] in farm.cli("archive", "list").stdout

    restored = farm.cli("archive", "restore", entry["file"])
    assert restored.exit_code == 0, restored.output + farm.supervisor_log()
    assert restored.stdout.startswith("restored 2 job(s)")
    for job in ids:
        assert snapshot(client, job) == before[job]
    # Read-only: control actions are refused, reads work.
    with pytest.raises(CueFarmError, match="restored from an archive"):
        client.retry(ids[1])
    refused = farm.cli("pause", str(ids[0]))
    assert refused.exit_code == 1 and "read-only" in refused.stderr
    # Restoring again: every job is live, nothing happens; asking for one live job fails.
    assert "all were live already" in farm.cli("archive", "restore", entry["file"]).stdout
    again = farm.cli("archive", "restore", entry["file"], "--job", str(ids[0]))
    assert again.exit_code == 1 and "in the database already" in again.stderr
    # A restored job is kept for [retention] restored_days before it goes again.
    assert farm.cli("archive", "run").stdout.strip() == "archived 0 job(s)"


def test_bad_archive_files_are_refused_naming_the_line(sqlite_farm, tmp_path):
    farm = restart(sqlite_farm, **RETAIN)
    [a, b] = run_jobs(farm, tmp_path)
    client = farm.client()
    today = datetime.date.today()
    days = (today - datetime.timedelta(days=1), today + datetime.timedelta(days=1))
    wait_until(lambda: sum(r["succeeded"] + r["failed"] for r in client.usage(*days))
               == 11, 30, message="usage counted")
    assert client.run_retention() == 2
    [entry] = client.archives()
    path = farm.workdir / "archive" / entry["file"]
    lines = gzip.open(path, "rt").read().splitlines()
    lines[3] = lines[3][:10]
    broken = path.with_name("cuefarm-archive-20000101T000000Z-1.jsonl.gz")
    with gzip.open(broken, "wt") as f:
        f.write("\n".join(lines) + "\n")
    result = farm.cli("archive", "restore", broken.name)
    assert result.exit_code == 1 and f"{broken.name}: line 4" in result.stderr
    assert client.jobs() == []                                  # nothing half restored
    for bad in ("../etc/passwd", "cuefarm-archive-1-2.jsonl.gz", "x.json"):
        result = farm.cli("archive", "restore", bad)
        assert result.exit_code == 1 and "archive" in result.stderr
    missing = farm.cli("archive", "restore", entry["file"], "--job", "999")
    assert missing.exit_code == 1 and "job 999 is not in" in missing.stderr
    assert client.restore_archive(entry["file"], [b]) == [b]
    assert [j["id"] for j in client.jobs()] == [b]


def test_uncounted_jobs_stay_and_the_duty_runs_by_itself(sqlite_farm, tmp_path):
    farm = restart(sqlite_farm, CUEFARM_RETENTION_FINISHED_JOB_DAYS="0.0000001",
                   CUEFARM_SUPERVISOR_USAGE_INTERVAL="3600")
    ids = run_jobs(farm, tmp_path)
    client = farm.client()
    assert client.run_retention() == 0         # usage accounting has not counted them yet
    assert {j["id"] for j in client.jobs()} == set(ids)
    restart(farm, CUEFARM_SUPERVISOR_USAGE_INTERVAL="0.3", CUEFARM_RETENTION_INTERVAL="0.5")
    wait_until(lambda: not farm.client().jobs(), 60, message="the retention duty")
    assert len(farm.client().archives()) == 1


def test_retention_settings_are_checked(sqlite_farm):
    import subprocess
    import sys

    farm = sqlite_farm
    farm.kill_supervisor(signal.SIGTERM)
    farm.env["CUEFARM_RETENTION_FINISHED_JOB_DAYS"] = "-1"
    proc = subprocess.run([sys.executable, "-m", "supervisor", "--port", str(farm.port),
                           "--db", farm.db_url], env=farm.env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "[retention] finished_job_days" in proc.stderr
    farm.env["CUEFARM_RETENTION_FINISHED_JOB_DAYS"] = "0"
    farm.start_supervisor()
    result = farm.cli("archive", "run")
    assert result.exit_code == 1 and "retention is off" in result.stderr
    # An age given by hand works with retention off; a bad one is refused.
    dry = farm.cli("archive", "run", "--older-than", "30d", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.strip() == "would archive 0 job(s), 0 frame(s)"
    bad = farm.cli("archive", "run", "--older-than", "soon")
    assert bad.exit_code == 2 and "give an age such as 30d" in bad.output
