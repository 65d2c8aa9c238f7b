"""What a worker refuses and how it prepares a launch: resources, users, path rules."""

from __future__ import annotations

import os
import pwd

import pytest

from cuefarm import protocol as p
from rqd import accounts, admission


def launch(**kw) -> p.Launch:
    fields = dict(attempt_id="1.1", job_id=1, job="j", project="pr", user="u", layer="l",
                  frame_id=1, frames="1", frame_start=1, frame_end=1, command=["true"])
    fields.update(kw)
    return p.Launch(**fields)


@pytest.mark.parametrize("kw, start", [
    (dict(memory_mb=0, memory_free_mb=0), ""),                  # no memory asked
    (dict(memory_mb=1000, memory_free_mb=1000), ""),
    (dict(memory_mb=1001, memory_free_mb=1000), "not enough free memory: 1000 MB available"),
    (dict(memory_mb=600, memory_free_mb=1000, reserved_mb=500), "not enough free memory: 500"),
    (dict(memory_mb=10, memory_free_mb=10, reserved_mb=50), "not enough free memory: 0 MB"),
    (dict(disk_free_mb=99), "not enough free disk for logs in /logs: 99 MB free, 100 MB"),
    (dict(disk_free_mb=100), ""),
])
def test_resource_refusal(kw, start):
    args = dict(memory_mb=0, memory_free_mb=4096, reserved_mb=0, disk_free_mb=5000,
                min_free_disk_mb=100, log_dir="/logs")
    args.update(kw)
    reason = admission.resource_refusal(**args)
    assert reason.startswith(start) and bool(reason) == bool(start)


def test_prepare_translates_with_own_rules_first_and_skips_bad_central_rules():
    msg = launch(command="render /mnt/proj/a -o /mnt/out/b", cwd="/mnt/proj",
                 env={"X": "/mnt/proj/x"},
                 path_maps=[p.PathRule("relative", "/x"), p.PathRule("/mnt/proj", "/central"),
                            p.PathRule("/mnt/out", "/central-out")])
    ready = admission.prepare(msg, [p.PathRule("/mnt/proj", "/own")], "linux", 1000, False)
    assert ready.launch.command == "render /own/a -o /central-out/b"
    assert ready.launch.cwd == "/own" and ready.launch.env == {"X": "/own/x"}
    assert ready.submitted_command == msg.command and ready.run_as is None
    untouched = admission.prepare(launch(), [], "linux", 1000, False)
    assert untouched.launch == launch() and untouched.submitted_command is None


def test_run_as_is_ignored_when_rqd_cannot_switch_users():
    ready = admission.prepare(launch(run_as="no-such-user-cuefarm"), [], "linux", 1000, False)
    assert ready.run_as is None


def test_run_as_refusals():
    with pytest.raises(admission.Refusal, match="does not exist on this host"):
        admission.prepare(launch(run_as="no-such-user-cuefarm"), [], "linux", 1000, True)
    with pytest.raises(admission.Refusal, match="uid 0, below the minimum uid 1000"):
        admission.prepare(launch(run_as="root"), [], "linux", 1000, True)
    with pytest.raises(admission.Refusal, match="not a valid user name"):
        admission.prepare(launch(run_as="x" * 300), [], "linux", 1000, True)
    with pytest.raises(admission.Refusal, match="does not exist"):
        admission.prepare(launch(run_as="bad\0name"), [], "linux", 1000, True)


def test_resolve_a_user():
    me = pwd.getpwuid(os.getuid())
    run_as = accounts.resolve(me.pw_name, min_uid=0)
    assert (run_as.uid, run_as.gid, run_as.home) == (me.pw_uid, me.pw_gid, me.pw_dir)
    assert me.pw_gid in run_as.groups
    assert run_as.env() == {"HOME": me.pw_dir, "USER": me.pw_name, "LOGNAME": me.pw_name}
    assert run_as.popen_kwargs()["user"] == me.pw_uid


def test_is_current_only_for_exactly_rqds_own_identity():
    uid, gid = os.getuid(), os.getgid()
    if len({*os.getresuid()}) != 1 or len({*os.getresgid()}) != 1:
        pytest.skip("rqd runs setuid or setgid here")
    groups = sorted(set(os.getgroups()) | {gid})
    me = accounts.RunAs("me", uid, gid, "/", groups)
    assert me.is_current()
    # Any difference means the frame's process must switch: another user, another primary
    # group, a supplementary group more or fewer.
    other = max(groups) + 1
    assert not accounts.RunAs("me", uid + 1, gid, "/", groups).is_current()
    assert not accounts.RunAs("me", uid, other, "/", [*groups, other]).is_current()
    assert not accounts.RunAs("me", uid, gid, "/", [*groups, other]).is_current()
    if set(groups) != {gid}:
        assert not accounts.RunAs("me", uid, gid, "/", [gid]).is_current()


def test_service_accounts_are_refused_whatever_their_uid():
    from cuefarm.config import DENY_USERS
    for name in ("postgres", "systemd-network", "_apt"):
        with pytest.raises(admission.Refusal, match="service account"):
            admission.prepare(launch(run_as=name), [], "linux", 0, True, DENY_USERS)
    me = pwd.getpwuid(os.getuid()).pw_name
    ready = admission.prepare(launch(run_as=me), [], "linux", 0, True, DENY_USERS)
    assert ready.run_as is not None and ready.run_as.name == me
