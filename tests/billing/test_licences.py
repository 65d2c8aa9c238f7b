"""Worker licences against a real supervisor (both databases) and simulated workers."""

from __future__ import annotations

import subprocess

import pytest
from click.testing import CliRunner

from cuefarm import CueFarmError
from cuefarm.cli import cli
from tests.billing.helpers import FastFleetThread, configure, FastClock, peak_busy_workers, \
    peak_frames_on_one_worker
from tests.farm import PYTHON, Farm, free_port_block, wait_until
from tests.jobs import job, layer
from tests.scheduling.sim import wait_finished


def test_licences_cap_the_workers_running_frames(new_farm):
    farm = configure(new_farm())
    farm.start_supervisor()
    c = farm.client()
    status = c.set_licences(2)
    assert (status["installed"], status["cap"], status["metered"]) == (2, 2, False)
    fleet = FastFleetThread(farm.address, [{"name": f"w{i}", "slots": 2} for i in range(4)],
                            runtime=0.2, clock=FastClock(1.0))
    farm.wait_hosts_up([f"w{i}" for i in range(4)])
    [a] = c.submit(job("a", [layer(frames=40)]))
    wait_until(lambda: c.job(a)["running"] > 0, 30)
    seen = c.licences()
    assert seen["in_use"] <= 2 and seen["overage_now"] == 0
    wait_finished(c, [a])
    # Raised while nothing runs: the next job may spread wider.
    c.set_licences(3)
    [b] = c.submit(job("b", [layer(frames=40)]))
    wait_finished(c, [b])
    events = fleet.close()
    assert peak_busy_workers(events, "a") == 2      # never a third worker...
    assert peak_frames_on_one_worker(events) == 2   # ...while busy ones fill their free slots
    assert peak_busy_workers(events, "b") == 3
    assert c.job(a)["succeeded"] == c.job(b)["succeeded"] == 40
    assert c.licences()["in_use"] == 0


def test_bad_licence_input_gets_a_clear_error(new_farm):
    farm = configure(new_farm())
    farm.start_supervisor()
    c = farm.client()
    for kwargs, field, words in (({"count": -1}, "count", "cannot be negative"),
                                 ({"sink": "http://billing:99999/x"}, "sink", "does not parse"),
                                 ({"sink": "billing.example.com"}, "sink", "neither"),
                                 ({"metered": True}, "sink", "needs a sink"),
                                 ({"rate": -0.5}, "rate", "dollars per worker-hour"),
                                 ({"count": 3, "unlimited": True}, "count", "not both")):
        with pytest.raises(CueFarmError) as info:
            c.set_licences(**kwargs)
        assert info.value.field == field and words in str(info.value), kwargs
    assert c.licences()["installed"] is None          # nothing changed
    runner = CliRunner()
    base = ["--supervisor", farm.address]
    got = runner.invoke(cli, [*base, "licences", "set", "-3"])
    assert got.exit_code == 1 and "cannot be negative" in got.output
    got = runner.invoke(cli, [*base, "licences", "set", "ten"])
    assert got.exit_code == 2 and "not a whole number" in got.output
    got = runner.invoke(cli, [*base, "licences", "set", "--metered", "--sink", "ftp://x/y"])
    assert got.exit_code == 1 and "scheme 'ftp'" in got.output
    got = runner.invoke(cli, [*base, "licences", "set", "5"])
    assert got.exit_code == 0 and "installed" in got.output and "5" in got.output
    got = runner.invoke(cli, [*base, "licences", "--json"])
    assert got.exit_code == 0 and '"installed": 5' in got.output
    # Amounts are exact: a rate given to the micro-dollar is kept and printed as given.
    got = runner.invoke(cli, [*base, "licences", "set", "--rate", "0.125"])
    assert got.exit_code == 0 and "$0.125 per overage worker-hour" in got.output, got.output
    assert c.licences()["rate"] == "0.125000"
    got = runner.invoke(cli, [*base, "licences", "set", "--rate", "0.1234567"])
    assert got.exit_code == 1 and "six decimal places" in got.output
    assert c.set_licences(rate=0.1)["rate"] == "0.100000"


@pytest.mark.parametrize("setting, words", [
    ("CUEFARM_SUPERVISOR_WORKER_LICENCES=-4", "cannot be negative"),
    ("CUEFARM_SUPERVISOR_METERING_SINK=ftp://billing/x", "scheme 'ftp'"),
    ("CUEFARM_SUPERVISOR_METERING=true", "needs a metering_sink"),
])
def test_bad_settings_stop_the_supervisor_with_a_clear_message(tmp_path, setting, words):
    farm = Farm(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    key, value = setting.split("=", 1)
    env = {**farm.env, key: value}
    port = free_port_block(4)
    proc = subprocess.run([PYTHON, "-m", "supervisor", "--port", str(port), "--db", farm.db_url],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr


def test_two_supervisors_sharing_a_database_keep_to_the_licence_count(postgres_url, tmp_path):
    farms = []
    try:
        fleets = []
        for side in ("a", "b"):
            (tmp_path / side).mkdir()
            farm = configure(Farm(postgres_url, tmp_path / side), worker_licences=2,
                             metering_sample=0.1)
            farm.start_supervisor()
            farms.append(farm)
            names = [f"{side}{i}" for i in range(3)]
            fleets.append(FastFleetThread(farm.address, [{"name": n, "slots": 1} for n in names],
                                          runtime=0.1, clock=FastClock(1.0)))
            farm.wait_hosts_up(names)
        c = farms[0].client()
        # A job for each supervisor's workers, submitted to it: they contend for the same two
        # licences.  A licence the other supervisor releases is taken up within a count.
        jobs = [f.client().submit(job(side, [layer(frames=40,
                                                   hosts=[f"{side}{i}" for i in range(3)])]))[0]
                for f, side in zip(farms, ("a", "b"))]
        wait_finished(c, jobs, 120)
        events = [e for f in fleets for e in f.close()]
        launched_by = {w[0] for kind, _, w, _ in events if kind == "launch"}
        assert launched_by == {"a", "b"}                 # both supervisors dispatched
        assert peak_busy_workers(events) == 2            # together never past the two licences
        assert [c.job(j)["succeeded"] for j in jobs] == [40, 40]
    finally:
        for f in farms:
            f.stop()
