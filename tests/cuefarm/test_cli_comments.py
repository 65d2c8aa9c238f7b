"""Comments, layer statistics and host history through the supervisor: the requests and the
`cuefarm comment`, `cuefarm comments`, `cuefarm layers --stats` and `cuefarm hosts history`
commands, against a real supervisor and worker."""

from __future__ import annotations

import json

import pytest

from cuefarm import CueFarmError
from cuefarm.client import Events
from tests.conftest import ROLES
from tests.farm import running_farm, wait_until
from tests.jobs import job, layer

HISTORY = {"CUEFARM_SUPERVISOR_HOST_HISTORY_STEP": "1",
           "CUEFARM_SUPERVISOR_FIGURES_INTERVAL": "0.5"}


@pytest.fixture
def farm(sqlite_url, tmp_path):
    """Roles (boss an admin, wendy a wrangler, others artists), one worker, a history step of
    one second."""
    with running_farm(sqlite_url, tmp_path, {**ROLES, **HISTORY}) as f:
        f.start_rqd("render01", 2)
        f.wait_hosts_up(["render01"])
        yield f


def cli_as(farm, user, *args, **kw):
    return farm.cli(*args, env={"LOGNAME": user, "USER": user}, **kw)


def test_comments_are_signed_by_who_sent_them_and_only_the_author_or_an_admin_deletes(farm):
    ann, bob, boss = (farm.client(user=u) for u in ("ann", "bob", "boss"))
    [job_id] = ann.submit(job("shot", [layer("r", frames=1, command=["true"])]))
    first = ann.add_comment("waiting on textures", job_id)
    second = bob.add_comment("  textures are in  ", job_id)
    on_host = bob.add_comment("fan is loud", host="render01")
    rows = boss.comments(job_id)
    assert [(r["id"], r["author"], r["text"]) for r in rows] == [
        (first, "ann", "waiting on textures"), (second, "bob", "textures are in")]
    assert all(r["created_at"] > 0 for r in rows)
    assert [(r["author"], r["host"]) for r in ann.comments(host="render01")] == [
        ("bob", "render01")]
    assert ann.job(job_id)["comments"] == 2
    wait_until(lambda: {h["name"]: h for h in ann.hosts()}["render01"]["comments"] == 1)

    with pytest.raises(CueFarmError) as info:
        ann.delete_comment(second)
    assert info.value.code == "forbidden" and "bob's" in str(info.value)
    bob.delete_comment(second)
    boss.delete_comment(first)           # an admin deletes anyone's
    boss.delete_comment(on_host)
    assert boss.comments(job_id) == [] and boss.comments(host="render01") == []
    with pytest.raises(CueFarmError) as info:
        boss.delete_comment(first)
    assert info.value.code == "not_found" and f"no comment with id {first}" in str(info.value)


def test_bad_comments_are_refused_with_a_clear_message_and_nothing_is_stored(farm):
    ann = farm.client(user="ann")
    [job_id] = ann.submit(job("shot", [layer("r", frames=1, command=["true"])]))
    for text, words in [("", "needs some text"), ("x" * 10_001, "at most 10,000 characters")]:
        with pytest.raises(CueFarmError) as info:
            ann.add_comment(text, job_id)
        assert info.value.code == "invalid" and words in str(info.value)
    for kwargs, words in [({"job_id": job_id + 99}, f"no job with id {job_id + 99}"),
                          ({"host": "nowhere"}, "no host named 'nowhere'"),
                          ({}, "name a job or a host")]:
        with pytest.raises(CueFarmError) as info:
            ann.add_comment("hello", **kwargs)
        assert words in str(info.value)
    assert ann.comments(job_id) == [] and ann.job(job_id)["comments"] == 0

    result = cli_as(farm, "ann", "comment", str(job_id), "")
    assert result.exit_code == 1 and "needs some text" in result.output
    result = cli_as(farm, "ann", "comments", "--host", "nowhere")
    assert result.exit_code == 1 and "no host named 'nowhere'" in result.output
    result = cli_as(farm, "ann", "comment", str(job_id))
    assert result.exit_code == 2 and "give JOB TEXT" in result.output


def test_a_comment_is_pushed_as_a_change_event(farm):
    ann = farm.client(user="ann")
    [job_id] = ann.submit(job("shot", [layer("r", frames=1, command=["true"])]))
    events = Events(farm.address)
    try:
        events.receive(5.0)               # subscribed: the greeting batch
        farm.client(user="bob").add_comment("look at frame 3", job_id)

        def seen():
            batch = events.receive(1.0)
            return batch is not None and any(j["id"] == job_id and j["comments"] == 1
                                             for j in batch.jobs)
        wait_until(seen, 15)
    finally:
        events.close()


def test_cli_adds_and_lists_comments_on_jobs_and_hosts(farm):
    [job_id] = farm.client(user="ann").submit(job("shot", [layer("r", frames=1,
                                                                  command=["true"])]))
    result = cli_as(farm, "ann", "comment", str(job_id), "do not retry, waiting on textures")
    assert result.exit_code == 0, result.output
    assert f"on job {job_id}" in result.output
    result = cli_as(farm, "walt", "comment", "--host", "render01", "memory errors twice")
    assert result.exit_code == 0, result.output

    listed = cli_as(farm, "bob", "comments", str(job_id))
    assert "ann" in listed.output and "do not retry, waiting on textures" in listed.output
    [row] = json.loads(cli_as(farm, "bob", "comments", "--host", "render01", "--json").output)
    assert (row["author"], row["text"], row["host"]) == ("walt", "memory errors twice",
                                                         "render01")
    # Deleting someone else's comment is refused; the author may.
    result = cli_as(farm, "bob", "comment", "--delete", str(row["id"]))
    assert result.exit_code == 1 and "walt's" in result.output
    assert cli_as(farm, "walt", "comment", "--delete", str(row["id"])).exit_code == 0
    assert "no comments" in cli_as(farm, "bob", "comments", "--host", "render01").output


def test_layer_statistics_and_host_history(farm):
    ann = farm.client(user="ann")
    # Submitted as the user running the test: frames run as their job's user.
    [job_id] = farm.client().submit(job("shot", [
        layer("heavy", frames=3, command=["sleep", "0.6"]),
        layer("light", frames=2, command=["true"])]))
    assert ann.wait(job_id, timeout=120)["succeeded"] == 5
    heavy, light = ann.layer_stats(job_id)
    assert (heavy["layer"], heavy["succeeded"], light["succeeded"]) == ("heavy", 3, 2)
    assert heavy["min"] >= 0.6 and heavy["avg"] > light["avg"]
    assert heavy["core_hours"] >= 3 * 0.6 / 3600 and heavy["core_hours"] > light["core_hours"]
    assert heavy["peak_rss"] > 0
    [only] = ann.layer_stats(job_id, "heavy", runtimes=True)
    assert len(only["runtimes"]) == 3 and min(only["runtimes"]) >= 0.6
    with pytest.raises(CueFarmError) as info:
        ann.layer_stats(job_id, "nope")
    assert "has no layer 'nope'" in str(info.value)
    with pytest.raises(CueFarmError) as info:
        ann.layer_stats(job_id + 99)
    assert info.value.code == "not_found"

    table = cli_as(farm, "ann", "layers", str(job_id), "--stats").output
    assert "CORE-HOURS" in table and "heavy" in table and "light" in table
    [h, _] = json.loads(cli_as(farm, "ann", "layers", str(job_id), "--stats", "--json").output)
    assert h["succeeded"] == 3

    # A point of history per second (this farm's step) while the worker heartbeats.
    wait_until(lambda: len(ann.host_history("render01")) >= 3, 30)
    points = ann.host_history("render01")
    assert [p["t"] for p in points] == sorted({p["t"] for p in points})
    assert all(p["memory_used_mb"] > 0 and p["running"] >= 0 for p in points)
    assert len(ann.host_history("render01", hours=0.0001)) <= 1
    with pytest.raises(CueFarmError) as info:
        ann.host_history("nowhere")
    assert "no host named 'nowhere'" in str(info.value)
    with pytest.raises(CueFarmError) as info:
        ann.host_history("render01", hours=0)
    assert info.value.field == "hours"
    table = cli_as(farm, "ann", "hosts", "history", "render01").output
    assert "MEMORY MB" in table and len(table.splitlines()) >= 4


def test_a_restricted_projects_comments_are_hidden_like_its_jobs(farm):
    wendy, ann = farm.client(user="wendy"), farm.client(user="ann")
    [secret] = farm.client().submit(job("secret", [layer("r", frames=1, command=["true"])],
                                        "secret"))
    wendy.set_project_members("secret", ["bob"])
    wendy.add_comment("for members only", secret)
    for call in (lambda: ann.comments(secret), lambda: ann.add_comment("hi", secret),
                 lambda: ann.layer_stats(secret)):
        with pytest.raises(CueFarmError) as info:
            call()
        assert info.value.code == "not_found" and f"no job with id {secret}" in str(info.value)
    assert [c["text"] for c in farm.client(user="bob").comments(secret)] == ["for members only"]


def test_host_history_is_pruned_to_the_hours_kept(sqlite_url, tmp_path):
    from sqlalchemy import func, select

    from supervisor.store.engine import make_engine
    from supervisor.store.models import HostSample
    env = {**HISTORY, "CUEFARM_SUPERVISOR_HOST_HISTORY_HOURS": str(3 / 3600)}   # 3 s
    with running_farm(sqlite_url, tmp_path, env) as f:
        f.start_rqd("render01", 1)
        f.wait_hosts_up(["render01"])
        engine = make_engine(sqlite_url)
        try:
            def stored():
                with engine.connect() as conn:
                    return conn.execute(select(func.count(), func.min(HostSample.t))).one()
            wait_until(lambda: stored()[0] >= 2, 30)
            first = stored()[1]
            # Points older than the hours kept are deleted as new ones are written.
            wait_until(lambda: stored()[1] > first + 3, 30)
            assert stored()[0] <= 6
        finally:
            engine.dispose()
