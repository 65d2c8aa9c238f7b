"""The dispatcher: one pass reads the candidates and claims what `planning.plan_pass` chose.

The turn's completions (an `intake.Batch`) are recorded in the pass's transaction, so the slots
they free are filled in it.  Launches are effects staged with that transaction: they are sent
only once the claim committed.  A launch that cannot be delivered is a refusal (requeued
without spending a retry); see the loop.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from supervisor.context import Context
from supervisor.intake import Batch
from supervisor.live import Live
from supervisor.planning import LAYERS_PER_PASS, Budget, Room, plan_pass
from supervisor.store import counts, hostadmin, work
from supervisor.store.counters import Deltas

log = logging.getLogger(__name__)
# Seconds before a pass looks again at work whose limits or slot caps another supervisor's
# pass was spending (it commits within milliseconds; looking at once would only spin).
HELD_ELSEWHERE = 0.005


def static_of(live: Live, conn, layers: list[dict[str, Any]]) -> dict[int, dict]:
    """The static fields of these candidate layers (the cache, completed from the database);
    a layer gone meanwhile is missing."""
    cache = live.layer_cache
    missing = [lay["id"] for lay in layers if lay["id"] not in cache]
    if missing:
        if len(cache) + len(missing) > 50_000:
            cache.clear()
            missing = [lay["id"] for lay in layers]
        cache.update(work.layer_static(conn, missing))
    return cache


def with_static(live: Live, conn, layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete candidate rows with the layers' static fields, from the cache when there."""
    cache = static_of(live, conn, layers)
    return [{**cache[lay["id"]], **lay} for lay in layers if lay["id"] in cache]


def note_ban_expiry(cx: Context, conn, now: float) -> None:
    """Wake the dispatcher when the earliest bad-host ban still in force ends: a frame that
    only fits on that host would otherwise wait for an unrelated event."""
    until = work.earliest_ban_end(conn, now)
    if until:
        cx.out.wake_at(cx.mono() + (until - now) + 0.01)


def run_pass(cx: Context, batch: Batch | None = None) -> int:
    """One pass; returns how many frames were launched.  With `batch`, the turn's completions
    are recorded first in the same transaction, and the slots they free are filled in it."""
    live = cx.live
    registry = live.registry
    # Without a batch nothing frees a slot before planning: with none free, nothing to do.
    if batch is None and not registry.has_room():
        return 0
    now = cx.clock()
    version = registry.version

    def fits(layer, w):
        return live.matcher.matches(layer, w, version)

    deltas, touched = Deltas(), work.Touched()
    claimed: list[tuple[work.Claimed, Room]] = []
    launches: list[int] = []
    again = busy_elsewhere = False
    cap = 0
    more = False      # the pass stopped at its batch size, not at the free slots
    try:
        with cx.begin() as (conn, out):
            if batch is not None:
                if batch.record(conn, live, now):
                    note_ban_expiry(cx, conn, now)
                # Frames that ended may release dependents or be requeued: runnable on any
                # supervisor's workers.
                out.farm_wake = True
                batch.release(live)               # undone if this fails
            # The work first, then the rooms for it: a farm of thousands of idle workers and
            # nothing waiting (a pass on a timer, on a shared database) builds no rooms.
            layers = (work.candidate_layers(conn, LAYERS_PER_PASS) if registry.has_room()
                      else [])
            workers = registry.dispatchable(cx.mono()) if layers else []
            rooms = [Room(w, w.free, w.memory_free, w.gpus_free, w.used == 0, w.used == 0)
                     for w in workers]
            free = sum(r.slots for r in rooms)
            cap = min(cx.cfg.dispatch_batch, free)
            more = cx.cfg.dispatch_batch < free
            static = static_of(live, conn, layers) if rooms else {}
            layers = [lay for lay in layers if lay["id"] in static]
            if layers:
                # The farm-wide counts this pass may spend (limits, job and project caps)
                # first, then the counts themselves: read after, they hold what the last pass
                # that spent them (on any supervisor) committed.
                held = counts.hold_counts(
                    conn, {n for lay in layers for n in static[lay["id"]]["limits"]},
                    {lay["job_id"] for lay in layers if lay["job_max_slots"] is not None},
                    {lay["project_id"] for lay in layers
                     if lay["project_max_slots"] is not None})
                kept = [lay for lay in layers if held.allows(lay, static[lay["id"]]["limits"])]
                if len(kept) < len(layers):
                    layers, busy_elsewhere = kept, True    # another supervisor spends them
                # Slots in use count only for a job's minimum and maximum and a project's
                # guarantee and maximum: a pass where no layer has one need not read them.
                job_used, project_used = counts.slots_in_use(conn) if any(
                    lay["min_slots"] or lay["guaranteed"] or lay["job_max_slots"] is not None
                    or lay["project_max_slots"] is not None for lay in layers) else ({}, {})
                names = {n for lay in layers for n in static[lay["id"]]["limits"]}
                budget = Budget(job_used, project_used,
                                counts.limit_usage(conn, names,
                                                 hosts=[r.worker.host_id for r in rooms]),
                                live.bans.of_jobs(conn, {lay["job_id"] for lay in layers}, now,
                                                  cx.mono(), live.failure_policy.writes))
                licensing = cx.billing.licensing if cx.billing is not None else None
                cap_workers = licensing.cap() if licensing is not None else None
                if cap_workers is not None:
                    # Locks the licence terms row (PostgreSQL) so supervisors sharing the
                    # database count in turn; past the cap (revoked, or fewer licences), the
                    # workers that took a licence last get nothing new and drain down to it.
                    budget.new_workers, over_cap = licensing.budget(conn, cap_workers)
                    busy_elsewhere = busy_elsewhere or licensing.contended
                    if over_cap:
                        rooms = [r for r in rooms if r.worker.host_id not in over_cap]
                # Plan the whole pass, then claim it: one locking read and one write of each
                # kind for all the layers the pass serves.
                asked = plan_pass(layers, static, rooms, budget, cap, fits)
                cap -= sum(len(picks) for _, picks in asked)
                got = work.claim(conn, [(lay, [(r.worker.host_id, r.worker.name, n)
                                               for r, n in picks]) for lay, picks in asked],
                                 now, deltas, touched) if asked else []
                for (layer, picks), claims in zip(asked, got):
                    claimed.extend((c, room) for c, (room, _) in zip(claims, picks))
                    for room, slots in picks[len(claims):]:   # another supervisor took those
                        room.give_back(layer, slots)
                        budget.refund(layer, room.worker.host_id, slots)
                        again = True      # those rooms are free again: look next turn
            work.settle(conn, deltas, touched, now)
            if batch is not None:    # first the slots the batch freed, then what the pass took
                batch.acknowledge(out)
            launches = [_launch(cx, out, c, room) for c, room in claimed]
            touched.hosts.update(room.worker.host_id for _, room in claimed)
            out.note(touched)
    except Exception as exc:
        if batch is not None:       # rolled back: the slots are not free after all
            batch.restore()
            cx.intake.failed(batch)
        cx.out.wake()
        if not isinstance(exc, SQLAlchemyError):
            raise
        log.exception("dispatch pass failed; nothing was claimed")
        return 0
    # Committed: the live view follows.
    if batch is not None:
        batch.committed(live, cx.intake)
    for (c, room), seq in zip(claimed, launches):
        w = room.worker
        w.add(c.attempt_id, c.slots, c.layer["memory"], c.layer["gpus"])
        w.launched[c.attempt_id] = seq
        if w.identity is None:
            cx.intake.refuse(b"", c.attempt_id, "launch could not be delivered")
    live.counters["dispatched"] += len(claimed)
    if again or (claimed and cap <= 0 and more):
        # More may fit: go again next turn, after reading the sockets.  (A pass that filled
        # every free slot has nothing left to fill until a slot comes free.)
        cx.out.wake()
    elif busy_elsewhere:    # soon, once that pass has committed (not at once: it holds them)
        cx.out.wake_at(cx.mono() + HELD_ELSEWHERE)
    return len(claimed)


def _launch(cx: Context, out, c: work.Claimed, room: Room) -> int:
    """Stage the launch of one claimed attempt (sent when the claim commits); its seq."""
    w = room.worker
    launch = c.launch()
    launch.path_maps = hostadmin.central_rules(cx.live.path_map_rows, w.os, w.tags)
    launch.run_as = c.layer["user"]   # from the submitter's identity, never the job spec
    launch.seq = cx.live.next_launch_seq()
    if w.identity is not None:
        out.send(w.identity, launch)
    return launch.seq
