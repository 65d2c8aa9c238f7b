"""systemd units and the service account (packaging/systemd).

systemd itself cannot run services in this container (it is not PID 1), so the units are checked
by systemd's own offline tools against a scratch root laid out as the packaging README installs
it: /opt/cuefarm a virtual environment with the wheel, the units in /etc/systemd/system, the
sysusers file in /usr/lib/sysusers.d.  Then each unit's ExecStart runs for real with the unit's
Environment= (its %S and %L directories made under the test's temporary directory).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cuefarm import Client
from tests.farm import answers, free_port_block, wait_until
from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "packaging" / "systemd"
SERVICES = ("cuefarm-supervisor.service", "cuefarm-rqd.service")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing (.ci/run installs Debian's systemd package)")
    return path


def service_section(name: str) -> list[tuple[str, str]]:
    """The [Service] settings of a unit, in order."""
    section, out = None, []
    for line in (UNITS / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            out.append((key, value))
    return out


@pytest.fixture(scope="module")
def sysroot(tmp_path_factory):
    """A scratch root: systemd's own units, /opt/cuefarm (a venv with the wheel, copied
    binaries so nothing points outside the root), our units and sysusers file."""
    root = tmp_path_factory.mktemp("root")
    (root / "usr/lib/systemd").mkdir(parents=True)
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    wheel = build_wheel(tmp_path_factory.mktemp("wheel"))
    subprocess.run([sys.executable, "-m", "venv", "--copies", str(root / "opt/cuefarm")],
                   check=True)
    # the wheel alone (its console scripts are what the units need); the test that runs the
    # units' commands installs its dependencies
    subprocess.run([str(root / "opt/cuefarm/bin/python"), "-m", "pip", "install", "-q",
                    "--no-deps", str(wheel)], check=True)
    (root / "wheel").mkdir()
    shutil.copy(wheel, root / "wheel")
    (root / "etc/systemd/system").mkdir(parents=True)
    for name in SERVICES:
        shutil.copy(UNITS / name, root / "etc/systemd/system" / name)
    (root / "usr/lib/sysusers.d").mkdir(parents=True)
    shutil.copy(UNITS / "cuefarm.sysusers", root / "usr/lib/sysusers.d/cuefarm.conf")
    return root


@pytest.mark.timeout(600)
def test_units_pass_systemd_analyze_verify(sysroot):
    units = [str(sysroot / "etc/systemd/system" / n) for n in SERVICES]
    done = subprocess.run([tool("systemd-analyze"), "verify", f"--root={sysroot}", *units],
                          capture_output=True, text=True)
    # verify exits 0 on unknown keys too, with a warning: nothing may be printed at all
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), \
        done.stdout + done.stderr


def test_verify_notices_a_broken_unit(sysroot, tmp_path):
    """The check above would catch a mistake: a misspelt key and a missing program."""
    bad = sysroot / "etc/systemd/system/cuefarm-broken.service"
    bad.write_text((UNITS / "cuefarm-rqd.service").read_text()
                   .replace("ProtectClock=", "ProtectClok=")
                   .replace("/opt/cuefarm/bin/cuefarm", "/opt/cuefarm/bin/cuefarm-nope"))
    try:
        done = subprocess.run([tool("systemd-analyze"), "verify", f"--root={sysroot}", str(bad)],
                              capture_output=True, text=True)
    finally:
        bad.unlink()
    assert "ProtectClok" in done.stderr and "cuefarm-nope" in done.stderr


def test_sysusers_creates_the_account_the_supervisor_runs_as(sysroot):
    (sysroot / "etc").mkdir(exist_ok=True)
    subprocess.run([tool("systemd-sysusers"), f"--root={sysroot}",
                    str(sysroot / "usr/lib/sysusers.d/cuefarm.conf")],
                   check=True, capture_output=True)
    users = {ln.split(":")[0]: ln.split(":") for ln in
             (sysroot / "etc/passwd").read_text().splitlines()}
    groups = {ln.split(":")[0] for ln in (sysroot / "etc/group").read_text().splitlines()}
    settings = dict(service_section("cuefarm-supervisor.service"))
    account = users[settings["User"]]
    assert settings["Group"] in groups
    assert 0 < int(account[2]) < 1000                       # a system account
    assert account[6].endswith("nologin")
    # rqd runs as root (frames run as their jobs' users): no User= there
    assert "User" not in dict(service_section("cuefarm-rqd.service"))


def test_supervisor_unit_is_hardened(sysroot):
    done = subprocess.run([tool("systemd-analyze"), "security", "--offline=true",
                           f"--root={sysroot}",
                           str(sysroot / "etc/systemd/system/cuefarm-supervisor.service")],
                          capture_output=True, text=True)
    [level] = re.findall(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout)
    assert level[1] == "OK", done.stdout          # systemd's best band short of "SAFE"


def test_no_unit_claims_a_reload():
    """Neither program handles SIGHUP (settings are read once at start): no ExecReload."""
    for name in SERVICES:
        assert "ExecReload" not in dict(service_section(name))
    for source in ("supervisor/main.py", "rqd/daemon.py"):
        assert "SIGHUP" not in (ROOT / source).read_text()


def unit_command(name: str, sysroot: Path, tmp: Path) -> tuple[list[str], dict[str, str]]:
    """A unit's ExecStart and Environment, as systemd would run them in `sysroot` with %S and %L
    (the state and log roots) under `tmp`; the directories the unit declares are created."""
    settings = service_section(name)
    spec = {"%S": str(tmp / "state"), "%L": str(tmp / "log")}

    def expand(text: str) -> str:
        for key, value in spec.items():
            text = text.replace(key, value)
        return text

    env = {"PATH": os.environ["PATH"], "HOME": str(tmp), "LANG": "C.UTF-8",
           "CUEFARM_CONFIG": str(tmp / "none.toml")}
    argv: list[str] = []
    for key, value in settings:
        if key == "Environment":
            k, _, v = value.partition("=")
            env[k] = expand(v)
        elif key == "ExecStart":
            argv = shlex.split(expand(value))
        elif key == "StateDirectory":
            (tmp / "state" / value).mkdir(parents=True, exist_ok=True)
        elif key == "LogsDirectory":
            (tmp / "log" / value).mkdir(parents=True, exist_ok=True)
    assert argv and argv[0].startswith("/opt/cuefarm/bin/")
    argv[0] = str(sysroot) + argv[0]
    return argv, env


@pytest.mark.timeout(600)
def test_unit_commands_run_a_farm(sysroot, tmp_path):
    [wheel] = (sysroot / "wheel").glob("cuefarm-*.whl")
    subprocess.run([str(sysroot / "opt/cuefarm/bin/python"), "-m", "pip", "install", "-q",
                    "--no-compile", str(wheel)], check=True)
    sup_argv, sup_env = unit_command("cuefarm-supervisor.service", sysroot, tmp_path)
    rqd_argv, rqd_env = unit_command("cuefarm-rqd.service", sysroot, tmp_path)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    procs = []
    try:
        for _ in range(3):
            port = free_port_block(4)
            sup_env["CUEFARM_SUPERVISOR_PORT"] = str(port)
            sup = subprocess.Popen(sup_argv, env=sup_env, cwd=cwd, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
            with Client(f"127.0.0.1:{port}", timeout=2) as probe:
                wait_until(lambda: sup.poll() is not None or answers(probe), 120, 0.2,
                           "the supervisor to answer")
            # Exit 4: a test running beside this one took a port between the look and the
            # bind; take others.
            if sup.poll() != 4:
                break
        procs.append(sup)
        rqd_env.update(CUEFARM_RQD_SUPERVISORS=f"127.0.0.1:{port}", CUEFARM_RQD_NAME="node1",
                       CUEFARM_RQD_SLOTS="2")
        if os.geteuid() == 0:
            rqd_env["CUEFARM_RQD_MIN_UID"] = "0"    # frames of this test's (root) user
        procs.append(subprocess.Popen(rqd_argv, env=rqd_env, cwd=cwd, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
        with Client(f"127.0.0.1:{port}", timeout=10) as client:
            def up():
                for p in procs:
                    assert p.poll() is None, p.stdout.read()
                try:
                    return any(h["name"] == "node1" and h["state"] == "UP"
                               for h in client.hosts())
                except Exception:
                    return False
            wait_until(up, 120, 0.5, "the worker to be UP")
            [job] = client.submit([{"name": "unit", "layers": [
                {"name": "r", "command": "echo unit frame #FRAME#", "range": "1-3"}]}])
            assert client.wait(job, timeout=120)["succeeded"] == 3
        codes = []
        for p in reversed(procs):           # rqd first, then the supervisor
            p.send_signal(signal.SIGTERM)
            codes.append(p.wait(60))
        assert codes == [0, 0]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    # where the unit says: SQLite in the supervisor's StateDirectory, frame logs in rqd's
    # LogsDirectory, rqd's state in its StateDirectory
    assert (tmp_path / "state/cuefarm/cuefarm.db").is_file()
    logs = list((tmp_path / "log/cuefarm-rqd").rglob("*.log"))     # under the farm's id
    assert len(logs) == 3 and all("unit frame" in p.read_text() for p in logs)
    assert (tmp_path / "state/cuefarm-rqd/rqd.lock").exists()
