"""The supervisor killed with SIGKILL three times during a 200-frame run on three real rqd, on
both databases: no two runs of a frame overlap, no frame is lost, no retry is charged
(benchmarks/crash_points.py is the long run, with worker kills too)."""

from __future__ import annotations

from tests import hostile
from tests.farm import running_farm
from tests.integration import crashes


def test_supervisor_killed_at_three_points_loses_nothing_and_charges_nothing(db_url,
                                                                              tmp_path):
    seed = hostile.seed_from_env("CUEFARM_CRASH_SEED")
    with running_farm(db_url, tmp_path, host_expiry=5.0, release_after=20.0) as farm:
        figures = crashes.run(farm, tmp_path, frames=200, supervisor_kills=3,
                              worker_kills=0, seed=seed)
    print(figures)
    assert figures["succeeded"] == 200
    assert figures["overlaps"] == 0
    assert figures["lost"] == 0
    assert figures["retries"] == 0
