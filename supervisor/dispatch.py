"""A dispatch pass: match waiting frames to free slots, claim them, then launch.

Order of service:
  1. jobs below their `min_slots`, then layers of projects below their guaranteed slots;
  2. everything else;
  within each, higher job priority first, then earlier submission, then layer and frame order.
Never past a project's or job's maximum, a limit's count, a host's free slots, memory or GPUs,
nor onto a host on the job's bad-host list.  Frames spread round-robin over the hosts that fit.
The claim commits before any launch is sent; a launch that cannot be delivered is treated as a
refusal (requeued without spending a retry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from supervisor import workerlink
from supervisor.registry import Worker
from supervisor.store import hostadmin, work
from supervisor.store.counters import Deltas

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger(__name__)
LAYERS_PER_PASS = 2000


BAN_REFRESH = 1.0     # seconds a pass reuses the bad-host bans read last


class Bans:
    """The bad-host bans in force, read at most once per BAN_REFRESH seconds: almost always
    there are none, and asking every pass cost a round trip.  This supervisor's own new bans
    and cleared lists invalidate it at once; another supervisor's show within BAN_REFRESH."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int, float]] = []
        self.fresh_until = float("-inf")
        self.writes = 0       # FailurePolicy.writes when read

    def invalidate(self) -> None:
        self.fresh_until = float("-inf")

    def of_jobs(self, conn, job_ids: set[int], now: float, mono: float,
                writes: int) -> dict[int, set[int]]:
        """Bans of these jobs: {job id: host ids}; `writes` is FailurePolicy.writes (failures
        recorded here since the last read make it read again)."""
        if mono >= self.fresh_until or writes != self.writes:
            self.rows = work.active_bans(conn, now)
            self.fresh_until, self.writes = mono + BAN_REFRESH, writes
        out: dict[int, set[int]] = {}
        for job_id, host_id, until in self.rows:
            if until > now and job_id in job_ids:
                out.setdefault(job_id, set()).add(host_id)
        return out


@dataclass
class Room:
    """Capacity of one worker as the pass sees it (tentative until commit)."""

    worker: Worker
    slots: int
    memory: int
    gpus: int
    idle: bool
    needs_licence: bool = False      # idle now: its first frame takes a worker licence

    def grant(self, layer: dict[str, Any]) -> int:
        """Slots this room would give one frame of `layer` now (0: it does not fit)."""
        if layer["memory"] > self.memory or layer["gpus"] > self.gpus:
            return 0
        mode, need = layer["slots_mode"], layer["slots"]
        if mode == "all":
            return self.slots if self.idle and self.slots > 0 else 0
        if self.slots < need:
            return 0
        return self.slots if mode == "plus" else need

    def take(self, layer: dict[str, Any], slots: int) -> None:
        self.slots -= slots
        self.memory -= layer["memory"]
        self.gpus -= layer["gpus"]
        self.idle = False

    def give_back(self, layer: dict[str, Any], slots: int) -> None:
        self.slots += slots
        self.memory += layer["memory"]
        self.gpus += layer["gpus"]


@dataclass
class Budget:
    """Shared caps of one pass: project and job slots, limits."""

    job_used: dict[int, int]
    project_used: dict[int, int]
    limits: dict[str, dict[str, Any]]
    banned: dict[int, set[int]] = field(default_factory=dict)
    new_workers: float = float("inf")   # idle workers that may still take a worker licence
    # (limit name, host id) -> frames of this pass holding a per-host limit that host did not
    # hold before the pass
    held: dict[tuple[str, int], int] = field(default_factory=dict)

    def job_shortfall(self, layer: dict[str, Any]) -> int:
        """Slots the job lacks to reach its min_slots."""
        return (layer["min_slots"] or 0) - self.job_used.get(layer["job_id"], 0)

    def project_shortfall(self, layer: dict[str, Any]) -> int:
        """Slots the project lacks to reach its guarantee."""
        return (layer["guaranteed"] or 0) - self.project_used.get(layer["project_id"], 0)

    def slots_left(self, layer: dict[str, Any]) -> float:
        left = float("inf")
        if layer["job_max_slots"] is not None:
            left = layer["job_max_slots"] - self.job_used.get(layer["job_id"], 0)
        if layer["project_max_slots"] is not None:
            left = min(left, layer["project_max_slots"]
                       - self.project_used.get(layer["project_id"], 0))
        return left

    def limits_exhausted(self, layer: dict[str, Any]) -> bool:
        """True when a limit the layer needs is gone or fully used, whatever the host (a
        per-host limit still lets in hosts that already hold it)."""
        for name in layer["limits"] or ():
            lim = self.limits.get(name)
            if lim is None or (lim["used"] >= lim["max"] and not lim["per_host"]):
                return True
        return False

    def limit_allows(self, layer: dict[str, Any], host_id: int) -> bool:
        for name in layer["limits"] or ():
            lim = self.limits.get(name)
            if lim is None:
                return False   # deleted after submission: hold the layer
            if lim["per_host"] and host_id in lim["hosts"]:
                continue
            if lim["used"] >= lim["max"]:
                return False
        return True

    def spend(self, layer: dict[str, Any], host_id: int, slots: int) -> None:
        self.job_used[layer["job_id"]] = self.job_used.get(layer["job_id"], 0) + slots
        self.project_used[layer["project_id"]] = (
            self.project_used.get(layer["project_id"], 0) + slots)
        for name in layer["limits"] or ():
            lim = self.limits[name]
            if lim["per_host"]:
                key = (name, host_id)
                if host_id not in lim["hosts"]:
                    lim["hosts"].add(host_id)
                    lim["used"] += 1
                    self.held[key] = 1
                elif key in self.held:    # taken earlier in this pass: one more frame holds it
                    self.held[key] += 1
            else:
                lim["used"] += 1

    def refund(self, layer: dict[str, Any], host_id: int, slots: int) -> None:
        """Undo one spend() that came to nothing (another supervisor claimed the frame)."""
        self.job_used[layer["job_id"]] -= slots
        self.project_used[layer["project_id"]] -= slots
        for name in layer["limits"] or ():
            lim = self.limits[name]
            if not lim["per_host"]:
                lim["used"] -= 1
                continue
            # A per-host limit is given back only by the last of this pass's frames that took
            # it; a host that held it before the pass keeps holding it.
            key = (name, host_id)
            if key in self.held:
                self.held[key] -= 1
                if not self.held[key]:
                    del self.held[key]
                    lim["hosts"].discard(host_id)
                    lim["used"] -= 1


def steps(layers: list[dict[str, Any]], budget: Budget):
    """The order of service: (layer, shortfall) where shortfall() caps the slots the step may
    take (None: uncapped).  Jobs below min_slots and projects below their guarantee are served
    first, each only up to what it lacks; then everyone, in priority order."""
    ordered = sorted(layers, key=lambda lay: (-lay["priority"], lay["job_id"], lay["idx"]))
    for lay in ordered:
        if budget.job_shortfall(lay) > 0:
            yield lay, (lambda lay=lay: budget.job_shortfall(lay))
    for lay in ordered:
        if budget.project_shortfall(lay) > 0:
            yield lay, (lambda lay=lay: budget.project_shortfall(lay))
    for lay in ordered:
        yield lay, None


def order(layers: list[dict[str, Any]], budget: Budget) -> list[dict[str, Any]]:
    """Layers in the order of service, each once."""
    seen, out = set(), []
    for lay, _ in steps(layers, budget):
        if lay["id"] not in seen:
            seen.add(lay["id"])
            out.append(lay)
    return out


def plan(layer: dict[str, Any], rooms: list[Room], budget: Budget, cap: int, fits,
         shortfall=None) -> list[tuple[Room, int]]:
    """Choose rooms for up to `cap` frames of `layer`, one per room per round, while
    `shortfall()` (if given) says the step still lacks slots."""
    want = min(layer["waiting"], cap)
    if want <= 0 or budget.slots_left(layer) <= 0 or budget.limits_exhausted(layer):
        return []
    banned = budget.banned.get(layer["job_id"], ())
    picks: list[tuple[Room, int]] = []

    def place(room: Room) -> bool:
        slots = room.grant(layer)
        if not slots or budget.slots_left(layer) < slots:
            return False
        if not budget.limit_allows(layer, room.worker.host_id):
            return False
        licence = room.needs_licence
        if licence and budget.new_workers <= 0:
            return False
        if licence:
            budget.new_workers -= 1
            room.needs_licence = False
        room.take(layer, slots)
        budget.spend(layer, room.worker.host_id, slots)
        picks.append((room, slots))
        return True

    # The first round finds the rooms that fit as it goes, so a layer that wants a few frames
    # looks at a few rooms, not every free one on the farm.
    candidates: list[Room] = []
    placed = False
    for room in rooms:
        if shortfall is not None and shortfall() <= 0:
            return picks
        if room.worker.host_id in banned or not fits(layer, room.worker):
            continue
        candidates.append(room)
        placed = place(room) or placed
        if len(picks) == want:
            return picks
    while placed and len(picks) < want:
        candidates = [r for r in candidates if r.slots > 0]
        placed = False
        for room in candidates:
            if shortfall is not None and shortfall() <= 0:
                return picks
            placed = place(room) or placed
            if len(picks) == want:
                return picks
    return picks


def static_of(sv: "Supervisor", conn, layers: list[dict[str, Any]]) -> dict[int, dict]:
    """The static fields of these candidate layers (the cache, completed from the database);
    a layer gone meanwhile is missing."""
    cache = sv.layer_cache
    missing = [lay["id"] for lay in layers if lay["id"] not in cache]
    if missing:
        if len(cache) + len(missing) > 50_000:
            cache.clear()
            missing = [lay["id"] for lay in layers]
        cache.update(work.layer_static(conn, missing))
    return cache


def with_static(sv: "Supervisor", conn, layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Complete candidate rows with the layers' static fields, from the cache when there."""
    cache = static_of(sv, conn, layers)
    return [{**cache[lay["id"]], **lay} for lay in layers if lay["id"] in cache]


def run_pass(sv: "Supervisor", batch: workerlink.Batch | None = None) -> int:
    """One pass; returns how many frames were launched.  With `batch`, the turn's completions
    are recorded first in the same transaction, and the slots they free are filled in it."""
    # Without a batch nothing frees a slot before planning: the workers with room are these.
    workers = None if batch is not None else sv.registry.dispatchable(sv.mono())
    if workers is not None and not workers:
        return 0
    now = sv.clock()
    version = sv.registry.version

    def fits(layer, w):
        return sv.matcher.matches(layer, w, version)

    deltas, touched = Deltas(), work.Touched()
    claimed: list[tuple[work.Claimed, Room]] = []
    again = False
    released: list[tuple] = []
    try:
        with sv.engine.begin() as conn:
            if batch is not None:
                workerlink.record(sv, conn, batch, now)
                released = workerlink.release(sv, batch)    # undone if this fails
                workers = sv.registry.dispatchable(sv.mono())
            rooms = [Room(w, w.free, w.memory_free, w.gpus_free, w.used == 0, w.used == 0)
                     for w in workers]
            cap = min(sv.cfg.dispatch_batch, sum(r.slots for r in rooms))
            layers = work.candidate_layers(conn, LAYERS_PER_PASS) if rooms else []
            static = static_of(sv, conn, layers) if layers else {}
            layers = [lay for lay in layers if lay["id"] in static]
            if layers:
                job_used, project_used = work.slots_in_use(conn)
                names = {n for lay in layers for n in static[lay["id"]]["limits"]}
                budget = Budget(job_used, project_used,
                                work.limit_usage(conn, names, lock=bool(names),
                                                 hosts=[r.worker.host_id for r in rooms]),
                                sv.bans.of_jobs(conn, {lay["job_id"] for lay in layers}, now,
                                                sv.mono(), sv.failure_policy.writes))
                cap_workers = sv.licence_cap()
                if cap_workers is not None:
                    # A cap is only ever set with billing attached.  Locks the licence terms
                    # row (PostgreSQL) so supervisors sharing the database count in turn; past
                    # the cap (revoked, or fewer licences), the workers that took a licence
                    # last get nothing new and drain down to it.
                    budget.new_workers, over_cap = sv.billing.licensing.budget(conn,
                                                                               cap_workers)
                    if over_cap:
                        rooms = [r for r in rooms if r.worker.host_id not in over_cap]
                # Plan the whole pass, then claim it: one locking read and one write of each
                # kind for all the layers the pass serves.
                wants: dict[int, tuple[dict[str, Any], list[tuple[Room, int]]]] = {}
                full: dict[int, dict[str, Any]] = {}   # with static fields, once a step reaches it
                for lay, shortfall in steps(layers, budget):
                    if cap <= 0 or not rooms:
                        break
                    layer = full.get(lay["id"])
                    if layer is None:
                        layer = full[lay["id"]] = {**static[lay["id"]], **lay}
                    if layer["waiting"] <= 0:
                        continue
                    picks = plan(layer, rooms, budget, cap, fits, shortfall)
                    if not picks:
                        continue
                    wants.setdefault(layer["id"], (layer, []))[1].extend(picks)
                    cap -= len(picks)
                    layer["waiting"] -= len(picks)
                    rooms = [r for r in rooms if r.slots > 0]
                asked = list(wants.values())
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
    except Exception as exc:
        if batch is not None:       # rolled back: the slots are not free after all
            workerlink.restore(released)
            workerlink.failed(sv, batch)
        sv.dispatch_needed = True
        if not isinstance(exc, SQLAlchemyError):
            raise
        log.exception("dispatch pass failed; nothing was claimed")
        return 0
    if batch is not None:     # first the slots the batch freed, then what the pass took
        workerlink.committed(sv, batch)
    for c, room in claimed:
        w = room.worker
        w.add(c.attempt_id, c.slots, c.layer["memory"], c.layer["gpus"])
        touched.hosts.add(w.host_id)
        launch = c.launch()
        launch.path_maps = hostadmin.central_rules(sv.path_map_rows, w.os, w.tags)
        launch.run_as = c.layer["user"]   # from the submitter's identity, never the job spec
        launch.seq = w.launched[c.attempt_id] = sv.next_launch_seq()
        if w.identity is None or not sv.send_worker(w.identity, launch):
            sv.refusals.append((w.identity or b"", c.attempt_id, "launch could not be delivered"))
    sv.counters["dispatched"] += len(claimed)
    sv.note(touched)
    if again or (claimed and cap <= 0):
        sv.dispatch_needed = True   # more may fit: go again next turn, after reading the sockets
    return len(claimed)
