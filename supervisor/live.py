"""The live state: what the loop knows beyond the database, touched on the loop thread only.

The registry of connected workers, the matcher's cache, the static fields of layers, the
bad-host bans in force, the admission policy, the central path rules, the launch sequence and
the counters the metrics read.  Every change follows a committed transaction.
"""

from __future__ import annotations

import time
from collections import Counter

from supervisor.logrelay import LogRelay
from supervisor.matching import Matcher
from supervisor.registry import Registry
from supervisor.store import work

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


class Live:
    def __init__(self, failure_policy: work.FailurePolicy, admission: dict) -> None:
        self.registry = Registry()
        self.matcher = Matcher()
        self.layer_cache: dict[int, dict] = {}      # static layer fields, by layer id
        self.failure_policy = failure_policy
        self.bans = Bans()
        self.admission = admission                  # the policy in force
        self.path_map_rows: list[dict] = []         # central path rules
        self.logs = LogRelay()                      # log requests waiting for their worker
        self.event_seq = 0                          # the last change event batch published
        # Event counts since start (dispatched, completions, reports, ...), for metrics; and
        # errors by code (malformed, database, internal, ...).
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.audit: list[dict] = []                 # audit entries to write (supervisor.auditing)
        self.client_addresses: dict[bytes, str] = {}   # client connection -> its address
        # With keys (supervisor.trust): the user each client connection authenticated as, and
        # the key each worker connection authenticated with.
        self.client_users: dict[bytes, str] = {}
        self.worker_keys: dict[bytes, str] = {}
        # Who may see what changed (keys, project members): events subscribers get new views.
        self.views_changed = False
        self.members_seen: dict | None = None
        self.big_submits = None     # supervisor.bigsubmit.BigSubmits, once the loop binds
        # Launch sequence numbers start from the wall clock in microseconds, so a restarted
        # supervisor's launches are numbered above anything a worker saw from the last run.
        self._launch_seq = time.time_ns() // 1000

    def next_launch_seq(self) -> int:
        self._launch_seq += 1
        return self._launch_seq

    def forget_layer(self, layer_id: int) -> None:
        """A layer's static fields changed: read them again when it is next dispatched."""
        self.layer_cache.pop(layer_id, None)
        self.matcher.forget_layer(layer_id)


def default_admission(cfg) -> dict:
    """The admission policy of the configuration (until an admin changes it)."""
    return {"mode": cfg.admission_mode, "networks": list(cfg.admission_networks),
            "patterns": list(cfg.admission_patterns)}
