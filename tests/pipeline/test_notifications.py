"""Notifications: recorded with the change that causes them, sent to real SMTP and HTTP
receivers by the supervisor, retried until the receiver is there, kept across restarts."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import sys
import textwrap

import pytest

from cuefarm import notify_rules, spec
from tests.farm import free_port_block, wait_until
from tests.pipeline.receivers import HookServer, MailServer

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")

FAST = {"CUEFARM_NOTIFICATIONS_POLL": "0.2", "CUEFARM_NOTIFICATIONS_RETRY_BASE": "0.3",
        "CUEFARM_NOTIFICATIONS_RETRY_MAX": "1", "CUEFARM_NOTIFICATIONS_TIMEOUT": "3",
        # a sender killed between its claim and its mark: another takes the row after this
        "CUEFARM_NOTIFICATIONS_LEASE": "5"}


def free_port() -> int:
    """A TCP port nothing listens on right now, outside the range outgoing connections use."""
    return free_port_block(1)


def notifying_farm(farm, **env: str):
    """Restart `farm`'s supervisor with fast notification settings, and one worker."""
    farm.kill_supervisor(signal.SIGTERM)
    farm.env.update(FAST, **env)
    farm.start_supervisor()
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    return farm


def submit(farm, tmp_path, text: str) -> int:
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(text))
    result = farm.cli("submit", str(path))
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    return int(result.stdout)


def test_rules_are_validated():
    assert notify_rules.validate({"email": "a@b.example"}) == [
        {"when": ["finished"], "email": "a@b.example"}]
    for bad, field, words in [
        ([{"when": ["done"], "email": "a@b.c"}], "jobs[0].notify[0].when[0]", "not an event"),
        ([{"email": "not an address"}], "jobs[0].notify[0].email", "e-mail address"),
        ([{"webhook": "ftp://x/y"}], "jobs[0].notify[0].webhook", "http(s) URL"),
        ([{"email": "a@b.c", "webhook": "http://x/"}], "jobs[0].notify[0]", "exactly one"),
        ([{"sms": "123"}], "jobs[0].notify[0].sms", "unknown key"),
    ]:
        with pytest.raises(spec.SpecError) as exc:
            spec.validate_submission([{"name": "n", "notify": bad, "layers": [
                {"name": "a", "command": "true", "range": "1"}]}])
        assert exc.value.field == field and words in exc.value.message


def test_mail_and_webhook_on_finish_and_on_dying(farm, tmp_path):
    """Both databases: events recorded in the transactions that end frames and jobs."""
    mail, hook = MailServer(), HookServer()
    try:
        notifying_farm(farm, CUEFARM_NOTIFICATIONS_SMTP_HOST="127.0.0.1",
                       CUEFARM_NOTIFICATIONS_SMTP_PORT=str(mail.port),
                       CUEFARM_NOTIFICATIONS_SMTP_FROM="farm@studio.example",
                       CUEFARM_NOTIFICATIONS_WEBHOOK_SECRET="s3cret")
        good = submit(farm, tmp_path, f"""\
            name: good
            notify:
              - {{when: [finished], email: lead@studio.example}}
              - {{when: [finished, frame_dead], webhook: "{hook.url('/good')}"}}
            layers:
              - {{name: a, command: [sh, -c, "exit 0"], range: 1-3}}
            """)
        bad = submit(farm, tmp_path, f"""\
            name: bad
            notify:
              - {{when: [frame_dead, job_dead], webhook: "{hook.url('/bad')}"}}
              - {{when: [job_dead], email: wrangler@studio.example}}
            layers:
              - {{name: ok, command: [sh, -c, "exit 0"], range: 1-2}}
              - {{name: boom, command: [sh, -c, "exit 3"], range: "7", max_retries: 0}}
            """)
        client = farm.client()
        wait_until(lambda: len(mail.messages) >= 2 and len(hook.received) >= 3, 60,
                   message="the notifications")
        by_path = {}
        for r in hook.received:
            by_path.setdefault(r["path"], []).append(r["body"])
        [finished] = by_path["/good"]
        assert finished["event"] == "finished" and finished["job"]["id"] == good
        assert finished["job"]["succeeded"] == 3
        events = sorted(b["event"] for b in by_path["/bad"])
        assert events == ["frame_dead", "job_dead"]
        assert by_path["/bad"][0]["frames"] == [{"layer": "boom", "frames": "7"}]
        assert all(r["type"] == "application/json" for r in hook.received)
        # Signed with the shared secret; one delivery id per notification.
        for r in hook.received:
            want = hmac.new(b"s3cret", r["raw"], hashlib.sha256).hexdigest()
            assert r["signature"] == f"sha256={want}"
        assert len({r["delivery"] for r in hook.received}) == 3
        subjects = sorted(m["Subject"] for m in mail.messages)
        assert subjects == [f"CueFarm: job bad ({bad}) died (dead frames, nothing left to run)",
                            f"CueFarm: job good ({good}) finished"]
        assert {m["To"] for m in mail.messages} == {"lead@studio.example",
                                                    "wrangler@studio.example"}
        assert mail.messages[0]["From"] == "farm@studio.example"
        wait_until(lambda: not client.notifications(), 10, message="nothing left pending")
        sent = client.notifications(include_sent=True)
        assert sorted(r["state"] for r in sent) == ["sent"] * 5
        assert len(hook.received) == 3 and len(mail.messages) == 2    # nothing sent twice
        # An export keeps the rules.
        assert client.export(good)["notify"][0] == {"when": ["finished"],
                                                    "email": "lead@studio.example"}
    finally:
        mail.close()
        hook.close()


def test_receiver_down_then_up_and_across_a_restart(sqlite_farm, tmp_path):
    farm = notifying_farm(sqlite_farm)
    port = free_port()
    url = f"http://127.0.0.1:{port}/late"
    first = submit(farm, tmp_path, f"""\
        name: early
        notify: [{{webhook: "{url}"}}]
        layers: [{{name: a, command: "true", range: "1"}}]
        """)
    client = farm.client()

    def failing():
        rows = client.notifications()
        return rows if rows and rows[0]["tries"] >= 2 else None

    [row] = wait_until(failing, 60, message="failed tries")
    assert row["state"] == "pending" and row["job_id"] == first
    assert "Connection refused" in row["last_error"] or "URLError" in row["last_error"]
    listed = farm.cli("notifications")
    assert listed.exit_code == 0 and url in listed.stdout and "refused" in listed.stdout

    hook = HookServer(port)
    try:
        wait_until(lambda: hook.received, 30, message="the retry to be delivered")
        assert hook.received[0]["body"]["job"]["id"] == first
        wait_until(lambda: not client.notifications(), 10, message="it to be marked sent")
    finally:
        hook.close()

    # Down again: a job finishes, the supervisor dies before it can send, comes back, sends.
    second = submit(farm, tmp_path, f"""\
        name: late
        notify: [{{webhook: "{url}"}}]
        layers: [{{name: a, command: "true", range: "1"}}]
        """)
    wait_until(lambda: [r for r in client.notifications() if r["job_id"] == second], 60,
               message="the second notification")
    farm.kill_supervisor(signal.SIGKILL)
    farm.start_supervisor()
    hook = HookServer(port)
    try:
        wait_until(lambda: [r for r in hook.received if r["body"]["job"]["id"] == second], 30,
                   message="delivery after the restart")
        wait_until(lambda: not farm.client().notifications(), 10, message="marked sent")
        assert [r["body"]["job"]["id"] for r in hook.received] == [second]
    finally:
        hook.close()


def test_a_receiver_that_keeps_failing_is_given_up_on_then_retried(sqlite_farm, tmp_path):
    hook = HookServer(status=500)
    try:
        farm = notifying_farm(sqlite_farm, CUEFARM_NOTIFICATIONS_MAX_TRIES="2")
        job = submit(farm, tmp_path, f"""\
            name: refused
            notify: [{{webhook: "{hook.url()}"}}]
            layers: [{{name: a, command: "true", range: "1"}}]
            """)
        client = farm.client()
        [row] = wait_until(lambda: [r for r in client.notifications() if r["state"] == "failed"],
                           60, message="the notification to be given up on")
        assert (row["job_id"], row["tries"]) == (job, 2) and "HTTP 500" in row["last_error"]
        as_json = json.loads(farm.cli("notifications", "--json").stdout)
        assert as_json[0]["state"] == "failed"
        hook.status = 200
        result = farm.cli("notifications", "retry")
        assert result.exit_code == 0 and "1 notification(s)" in result.stdout
        wait_until(lambda: not client.notifications(), 30, message="the retried delivery")
        assert len(hook.received) == 3
    finally:
        hook.close()


def test_bad_settings_stop_the_supervisor_with_a_message(sqlite_farm):
    farm = sqlite_farm
    farm.kill_supervisor(signal.SIGTERM)
    farm.env["CUEFARM_NOTIFICATIONS_DEFAULT_EMAIL"] = "nobody"
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "supervisor", "--port", str(farm.port),
                           "--db", farm.db_url], env=farm.env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "[notifications] default_*" in proc.stderr and "'nobody'" in proc.stderr


def test_project_and_supervisor_rules_apply_to_jobs_without_their_own(farm, tmp_path):
    hook = HookServer()
    try:
        farm = notifying_farm(farm, CUEFARM_NOTIFICATIONS_DEFAULT_WEBHOOK=hook.url("/d"),
                              CUEFARM_NOTIFICATIONS_DEFAULT_ON="finished,job_dead")
        other = HookServer()
        result = farm.cli("projects", "notify", "lighting", "--webhook", other.url("/p"),
                          "--when", "finished,job_dead")
        assert result.exit_code == 0 and other.url("/p") in result.stdout, result.output
        bad = farm.cli("projects", "notify", "lighting", "--email", "nobody")
        assert bad.exit_code == 1 and "'nobody' is not an e-mail address" in bad.stderr
        by_project = submit(farm, tmp_path, """\
            name: by-project
            project: lighting
            layers: [{name: a, command: "true", range: "1"}]
            """)
        quiet = submit(farm, tmp_path, """\
            name: quiet
            notify: []
            layers: [{name: a, command: "true", range: "1"}]
            """)
        told = submit(farm, tmp_path, """\
            name: told
            layers: [{name: a, command: "true", range: "1"}]
            """)
        client = farm.client()
        client.wait(quiet, timeout=60)
        wait_until(lambda: hook.received, 30, message="the default webhook")
        assert [r["body"]["job"]["id"] for r in hook.received] == [told]
        assert client.export(told)["notify"] == [{"when": ["finished", "job_dead"],
                                                  "webhook": hook.url("/d")}]
        assert "notify" not in client.export(quiet)
        wait_until(lambda: other.received, 30, message="the project's webhook")
        assert [r["body"]["job"]["id"] for r in other.received] == [by_project]
        assert client.project_notify("lighting", []) == []
        assert "no rules" in farm.cli("projects", "notify", "lighting").stdout
        other.close()
    finally:
        hook.close()


def test_notify_sets_a_submitted_jobs_rules(sqlite_farm, tmp_path):
    hook = HookServer()
    try:
        farm = notifying_farm(sqlite_farm)
        job = submit(farm, tmp_path, """\
            name: later
            paused: true
            layers:
              - {name: a, command: [sh, -c, "exit 0"], range: 1-2}
            """)
        shown = farm.cli("notify", str(job))
        assert shown.exit_code == 0 and "no rules of its own" in shown.output
        set_ = farm.cli("notify", str(job), "--webhook", hook.url("/later"),
                        "--when", "finished,job_dead")
        assert set_.exit_code == 0, set_.output
        assert "finished,job_dead" in set_.output and hook.url("/later") in set_.output
        bad = farm.cli("notify", str(job), "--email", "not an address")
        assert bad.exit_code != 0 and "e-mail address" in bad.output
        missing = farm.cli("notify", "999999", "--email", "a@b.example")
        assert missing.exit_code != 0 and "999999" in missing.output
        client = farm.client()
        client.resume([job])
        wait_until(lambda: len(hook.received) == 1, 60, message="the finish told")
        assert hook.received[0]["body"]["job"]["id"] == job
        assert client.job_notify(job) == [{"when": ["finished", "job_dead"],
                                           "webhook": hook.url("/later")}]
        assert client.job_notify(job, []) == []          # cleared
    finally:
        hook.close()
