"""hold_counts: the farm-wide counts a dispatch pass spends are taken by one pass at a time,
and a pass never waits for them (two transactions at once on PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import insert

from supervisor.store import counts
from supervisor.store.models import Limit


def test_what_one_pass_holds_another_leaves_out_until_it_commits(engine):
    with engine.begin() as conn:
        conn.execute(insert(Limit), [{"name": "arnold", "max": 3, "per_host": False},
                                     {"name": "nuke", "max": 1, "per_host": True}])
    first = engine.connect()
    second = engine.connect()
    try:
        first.begin()
        held = counts.hold_counts(first, {"arnold", "nuke", "gone"}, {11, 12}, {7})
        # A name no limit has is not held back (the planner holds the layer for it).
        assert held == counts.Held({"arnold", "nuke", "gone"}, {11, 12}, {7})
        if engine.dialect.name != "postgresql":
            return       # one supervisor: its transactions are serialized
        second.begin()
        other = counts.hold_counts(second, {"arnold", "gone"}, {12, 13}, {7, 8})
        assert other == counts.Held({"gone"}, {13}, {8})
        layer = {"job_id": 12, "job_max_slots": 4, "project_id": 8, "project_max_slots": None}
        assert not other.allows(layer, [])
        assert other.allows({**layer, "job_id": 13}, ["gone"])
        assert not other.allows({**layer, "job_id": 13}, ["arnold"])
        assert other.allows({**layer, "job_max_slots": None}, [])   # not capped: not asked
        second.rollback()
        first.commit()                     # the first pass is done: the next takes them
        second.begin()
        assert counts.hold_counts(second, {"arnold"}, {12}, {7}) == counts.Held({"arnold"}, {12},
                                                                            {7})
        second.rollback()
    finally:
        first.close()
        second.close()
