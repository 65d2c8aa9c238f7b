"""Worker-link messages dropped, duplicated and reordered both ways (tests/integration/chaos.py)
between real rqd processes and a real supervisor: every frame still ends SUCCEEDED, each
completion is counted once, and no two runs of one frame overlap (the frames keep a ledger)."""

from __future__ import annotations

from collections import Counter

from tests import hostile
from tests.farm import free_port_block, running_farm
from tests.integration import ledger
from tests.integration.chaos import ChaosProxy

FRAMES = 40


def test_dropped_duplicated_and_reordered_messages_run_each_frame_to_success(sqlite_url,
                                                                              tmp_path):
    seed = hostile.seed_from_env("CUEFARM_CHAOS_SEED")
    cmd, book = ledger.command(tmp_path, 0.3)
    with running_farm(sqlite_url, tmp_path) as farm:
        proxy_port = free_port_block()
        proxy = ChaosProxy(proxy_port + 1, farm.port + 1, seed)
        real_address = farm.address
        try:
            farm.address = f"127.0.0.1:{proxy_port}"     # the workers know the proxy only
            for name in ("c1", "c2", "c3"):
                farm.start_rqd(name, 2)
            farm.address = real_address
            farm.wait_hosts_up(["c1", "c2", "c3"], timeout=60)
            c = farm.client(timeout=30)
            [job_id] = c.submit([{"name": "chaos", "project": "p", "layers": [
                {"name": "r", "command": cmd, "range": f"1-{FRAMES}", "max_retries": 0}]}])
            job = c.wait(job_id, timeout=240)
        finally:
            counts = proxy.close()
        print("chaos:", dict(counts))
        for direction in ("up", "down"):
            for what in ("dropped", "duplicated", "reordered"):
                assert counts[f"{direction} {what}"] > 0, (direction, what, dict(counts))
        frames = c.frames(job_id)
        assert job["state"] == "FINISHED" and job["succeeded"] == FRAMES, job
        assert {f["state"] for f in frames} == {"SUCCEEDED"}
        # Applied once: the job's counters are its frames' states, no failure was charged.
        states = Counter(f["state"] for f in frames)
        assert states == Counter({"SUCCEEDED": FRAMES})
        assert job["dead"] == 0 and job["running"] == 0 and job["waiting"] == 0
        assert all(f["retries"] == 0 for f in frames), frames
        runs = ledger.attempts(book)
        for f in frames:
            # The attempt that counted is one that ran to its end, on the host recorded.
            r = runs[f["attempt_id"]]
            assert r["how"] == "end" and r["host"] == f["host"], (f, r)
        ledger.assert_no_overlap(book)
