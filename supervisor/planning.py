"""Planning a dispatch pass, as plain functions of plain data: no database, no sockets.

Given the candidate layers, the free rooms of the workers and the pass's budget (project and job
slots, limits, bans, worker licences), `plan_pass` says which frames go where.  Order of service:
  1. jobs below their `min_slots`, then layers of projects below their guaranteed slots;
  2. everything else;
  within each, higher job priority first, then earlier submission, then layer order.
Never past a project's or job's maximum, a limit's count, a host's free slots, memory or GPUs,
nor onto a host on the job's bad-host list.  Frames spread round-robin over the hosts that fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from supervisor.registry import Worker

LAYERS_PER_PASS = 2000


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


def plan_pass(layers: list[dict[str, Any]], static: dict[int, dict[str, Any]],
              rooms: list[Room], budget: Budget, cap: int,
              fits: Callable[[dict[str, Any], Worker], bool]
              ) -> list[tuple[dict[str, Any], list[tuple[Room, int]]]]:
    """The moves of one pass: [(layer, [(room, slots), ...])], each layer once, in the order of
    service.  `layers` are candidate rows (id, job_id, priority, waiting, ... as the store reads
    them), `static` their static fields by layer id (completed lazily: a layer's fields are
    looked at only when its turn comes); at most `cap` frames in all.  Rooms and the budget are
    spent as the plan goes."""
    wants: dict[int, tuple[dict[str, Any], list[tuple[Room, int]]]] = {}
    full: dict[int, dict[str, Any]] = {}     # with static fields, once a step reaches it
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
    return list(wants.values())
