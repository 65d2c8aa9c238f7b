"""Garbage collection on the supervisor loop: survivors frozen, everything collected hourly."""

from __future__ import annotations

import gc
import weakref

from cuefarm.config import SupervisorConfig
from supervisor.loop import GC_FULL
from supervisor.server import Supervisor
from supervisor.store.engine import make_engine


class Node:
    pass


def test_survivors_are_frozen_and_the_hourly_collection_reclaims_frozen_cycles(tmp_path):
    clock = [1000.0]
    engine = make_engine(f"sqlite:///{tmp_path / 'gc.db'}")
    sv = Supervisor(SupervisorConfig(), engine, monotonic=lambda: clock[0])
    node = Node()
    node.me = node                   # a cycle: only the garbage collector frees it
    alive = weakref.ref(node)
    try:
        gc.unfreeze()
        sv.collect_garbage()          # the full collection is not due yet: freeze only
        assert gc.get_freeze_count() > 0
        del node
        gc.collect()
        assert alive() is not None   # frozen: ordinary collections leave it alone
        clock[0] += GC_FULL + 1
        sv.collect_garbage()          # due: unfreeze, collect everything, freeze again
        assert alive() is None
        assert sv.collect_garbage.next_full == clock[0] + GC_FULL
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        engine.dispose()
