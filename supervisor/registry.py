"""The supervisor's live view of its workers: connection, free slots, running attempts.

The database is the record; this is the working copy the dispatcher consults so a pass never
reads host rows.  Every change here follows a committed transaction, never precedes one.
Times are monotonic seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# What decides whether a worker has a free slot to offer a pass (see Registry.dispatchable).
ROOM_FIELDS = frozenset({"identity", "slots", "locked", "lock_slots", "nimby", "draining",
                         "banned", "used"})


@dataclass
class Worker:
    host_id: int
    name: str
    identity: bytes | None = None        # ZeroMQ routing id while connected
    slots: int = 0                       # total: an admin's setting, else what the worker offers
    offered: int = 0                     # what the worker offers
    locked: bool = False
    lock_slots: int | None = None        # a partial lock leaves this many
    nimby: bool = False                  # someone is using the machine (the worker says)
    draining: bool = False               # told to drain: nothing new starts
    banned: bool = False                 # an admin banned it while it was connected
    own_rules: list = field(default_factory=list)   # the worker's own path rules
    memory_mb: int = 0
    os: str = ""
    cores: int = 0
    gpus: int = 0
    tags: frozenset[str] = frozenset()
    load: float = 0.0
    used: int = 0
    memory_used: int = 0
    gpus_used: int = 0
    # attempt id -> (slots, MB, GPUs) it holds
    running: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    last_seen: float = 0.0
    down_since: float | None = None      # set while DOWN
    released: bool = False               # its frames were requeued while it was DOWN
    refuse_until: float = 0.0            # after a refusal, leave the host alone briefly
    figures: dict | None = None          # latest heartbeat figures not yet written
    sampled: float = -1.0                # the history step of its latest kept point
    # attempt id -> when (monotonic) a heartbeat first left out an attempt we believe runs here
    missing: dict[str, float] = field(default_factory=dict)
    # attempt id -> the seq of its Launch (adopted attempts have none: the worker named them)
    launched: dict[str, int] = field(default_factory=dict)
    told_total: int | None = None        # the slot total the worker was last told

    def __setattr__(self, name: str, value) -> None:
        object.__setattr__(self, name, value)
        if name in ROOM_FIELDS:
            changed = self.__dict__.get("_changed")
            if changed is not None:       # a registry's worker: it looks again at this one
                changed.add(self.host_id)

    @property
    def total(self) -> int:
        if self.nimby or self.draining or self.banned:
            return 0
        if self.locked:
            return min(self.lock_slots or 0, self.slots)
        return self.slots

    @property
    def free(self) -> int:
        return max(0, self.total - self.used)

    @property
    def memory_free(self) -> int:
        return (self.memory_mb - self.memory_used) if self.memory_mb else 1 << 40

    @property
    def gpus_free(self) -> int:
        return self.gpus - self.gpus_used

    def attributes(self) -> dict:
        """What requirement expressions see as host.<name>."""
        return {"name": self.name, "os": self.os, "memory": self.memory_mb,
                "memory_free": self.memory_free, "cores": self.cores, "slots": self.slots,
                "gpus": self.gpus, "tags": sorted(self.tags), "load": self.load}

    def add(self, attempt_id: str, slots: int, memory: int = 0, gpus: int = 0) -> None:
        if attempt_id not in self.running:
            self.running[attempt_id] = (slots, memory, gpus)
            self.used += slots
            self.memory_used += memory
            self.gpus_used += gpus

    def remove(self, attempt_id: str) -> None:
        slots, memory, gpus = self.running.pop(attempt_id, (0, 0, 0))
        self.missing.pop(attempt_id, None)
        self.launched.pop(attempt_id, None)
        self.used -= slots
        self.memory_used -= memory
        self.gpus_used -= gpus

    def take_out(self, attempt_id: str) -> tuple | None:
        """remove(), keeping what put_back() needs to undo it (None: it was not here)."""
        if attempt_id not in self.running:
            return None
        kept = (self.running[attempt_id], self.missing.get(attempt_id),
                self.launched.get(attempt_id))
        self.remove(attempt_id)
        return kept

    def put_back(self, attempt_id: str, kept: tuple) -> None:
        (slots, memory, gpus), missing, launched = kept
        self.running[attempt_id] = (slots, memory, gpus)
        self.used += slots
        self.memory_used += memory
        self.gpus_used += gpus
        if missing is not None:
            self.missing[attempt_id] = missing
        if launched is not None:
            self.launched[attempt_id] = launched

    def clear(self) -> None:
        self.running.clear()
        self.missing.clear()
        self.launched.clear()
        self.used = self.memory_used = self.gpus_used = 0


class Registry:
    def __init__(self) -> None:
        self.version = 0          # bumped when host attributes change (invalidates match caches)
        self.by_id: dict[int, Worker] = {}
        self.by_name: dict[str, Worker] = {}
        self.by_identity: dict[bytes, Worker] = {}
        # Workers that may have a free slot, and those changed since dispatchable() last
        # looked (Worker.__setattr__ notes them): a pass looks at a few, not the whole farm.
        self.room: dict[int, Worker] = {}
        self.changed: set[int] = set()

    def get_or_add(self, host_id: int, name: str) -> Worker:
        w = self.by_id.get(host_id)
        if w is None:
            w = Worker(host_id, name)
            object.__setattr__(w, "_changed", self.changed)
            self.changed.add(host_id)
            self.by_id[host_id] = w
            self.by_name[name] = w
        return w

    def connect(self, w: Worker, identity: bytes, now: float) -> None:
        if w.identity is not None and w.identity != identity:
            self.by_identity.pop(w.identity, None)
        w.identity = identity
        w.last_seen = now
        w.told_total = None                  # a new connection: tell it again
        w.down_since = None
        w.released = False
        self.by_identity[identity] = w

    def disconnect(self, w: Worker, now: float) -> None:
        if w.identity is not None:
            self.by_identity.pop(w.identity, None)
        w.identity = None
        if w.down_since is None:
            w.down_since = now

    def forget(self, w: Worker) -> None:
        """Drop a worker from the live view (another supervisor serves it now)."""
        self.disconnect(w, 0.0)
        self.by_id.pop(w.host_id, None)
        self.changed.add(w.host_id)
        if self.by_name.get(w.name) is w:
            self.by_name.pop(w.name, None)
        self.version += 1

    def dispatchable(self, now: float) -> list[Worker]:
        """Connected workers with a free slot, not backing off a refusal, in host id order."""
        self._look_again()
        return [w for _, w in sorted(self.room.items()) if w.refuse_until <= now]

    def has_room(self) -> bool:
        """Whether some connected worker has a free slot (backing off a refusal or not): cheap,
        whatever the number of workers."""
        self._look_again()
        return bool(self.room)

    def _look_again(self) -> None:
        """Only the workers changed since the last look are looked at again (the test is
        Worker.total spelled out, without the property calls)."""
        if self.changed:
            room, by_id = self.room, self.by_id
            for hid in self.changed:
                w = by_id.get(hid)
                if (w is None or w.identity is None or w.nimby or w.draining or w.banned
                        or (min(w.lock_slots or 0, w.slots) if w.locked else w.slots) <= w.used):
                    room.pop(hid, None)
                else:
                    room[hid] = w
            self.changed.clear()
