"""What workers hand in between two turns, and recording it in one transaction per turn.

Completions, refusals and attempts found lost wait here until the turn's end; `take` turns them
into a `Batch`, which the dispatch pass records in its own transaction (so the slots they free
are filled in it), then acknowledges once that commits.  Registrations wait here too and are
handled in batches by `supervisor.registration`.
"""

from __future__ import annotations

import logging

from cuefarm import protocol as p
from supervisor.live import Live
from supervisor.outbox import Outbox
from supervisor.store import work
from supervisor.store.counters import Deltas
from supervisor.store.models import parse_attempt_id, storable

log = logging.getLogger(__name__)
REFUSAL_BACKOFF = 2.0           # seconds a host that refused a launch is left alone


class Intake:
    def __init__(self) -> None:
        self.completions: list[tuple[bytes, p.Completion]] = []
        self.completing: set[str] = set()       # attempt ids in `completions`
        self.registrations: list[tuple[bytes, p.Register, str]] = []   # identity, body, address
        self.refusals: list[tuple[bytes, str, str]] = []       # identity, attempt id, reason
        self.lost: list[tuple[int, tuple[int, int], str]] = []  # host, (frame, number), why
        self.lost_pending: set[str] = set()                     # attempt ids in `lost`

    def __bool__(self) -> bool:
        return bool(self.completions or self.refusals or self.registrations or self.lost)

    def complete(self, identity: bytes, completions: list[p.Completion]) -> None:
        """Queue completions for the turn's transaction (and note their ids: a heartbeat sent
        before them must not make their attempts look lost)."""
        self.completions.extend((identity, c) for c in completions)
        self.completing.update(c.attempt_id for c in completions)

    def refuse(self, identity: bytes, attempt_id: str, reason: str) -> None:
        self.refusals.append((identity, attempt_id, reason))

    def register(self, identity: bytes, body: p.Register, address: str) -> None:
        self.registrations.append((identity, body, address))

    def lose(self, host_id: int, key: tuple[int, int], why: str) -> None:
        """An attempt the worker does not run (a launch or kill went astray): end it."""
        aid = f"{key[0]}.{key[1]}"
        if aid not in self.lost_pending:
            self.lost.append((host_id, key, why))
            self.lost_pending.add(aid)

    def take_registrations(self, n: int) -> list[tuple[bytes, p.Register, str]]:
        items, self.registrations = self.registrations[:n], self.registrations[n:]
        return items

    def take(self, live: Live, out: Outbox, mono: float) -> "Batch | None":
        """The turn's completions, refusals and lost attempts (None: there are none)."""
        if not self.completions and not self.refusals and not self.lost:
            return None
        b = Batch(self.completions, self.refusals, self.lost)
        self.completions, self.refusals, self.lost = [], [], []
        self.completing = set()
        for host_id, key, why in b.lost:
            b.results[key] = why
            b.hosts[key] = host_id
        for identity, c in b.completions:
            w = live.registry.by_identity.get(identity)
            if w is None:
                # Not (or no longer) registered: which host it speaks for is unknown.  It is
                # told to register again, and hands its completions in with the registration.
                live.errors["completion_from_unknown_worker"] += 1
                continue
            b.acks.setdefault(identity, {})[c.attempt_id] = None
            key = parse_attempt_id(c.attempt_id)
            if key:
                b.results[key] = c
                b.hosts[key] = w.host_id
        for identity, aid, reason in b.refusals:
            w = live.registry.by_identity.get(identity)
            key = parse_attempt_id(aid)
            if key and w is not None:
                reason = storable(reason)    # kept with the attempt, and with a ban
                b.results[key] = f"lost: refused by the worker: {reason}"[:1000]
                b.hosts[key] = w.host_id
                if reason.startswith("user "):
                    b.cannot[aid] = reason
            if w is not None:
                w.refuse_until = mono + REFUSAL_BACKOFF
                out.wake_at(w.refuse_until)      # the host may take the frame then: look again
        return b

    def failed(self, b: "Batch") -> None:
        """The batch's transaction failed: nothing is acknowledged, so the workers send their
        completions again; refusals are retried by expiry."""
        log.error("could not record %d completions; the workers will send them again",
                  len(b.results))
        self.refusals.extend(b.refusals)
        self.lost_pending.difference_update(f"{k[0]}.{k[1]}" for _, k, _ in b.lost)


class Batch:
    """A turn's completions, refusals and lost attempts, recorded in a transaction (alone, or
    with the turn's dispatch pass), then acknowledged."""

    def __init__(self, completions, refusals, lost) -> None:
        self.completions, self.refusals, self.lost = completions, refusals, lost
        self.results: dict = {}
        self.hosts: dict[tuple[int, int], int] = {}   # the host each result came from
        self.foreign: list[tuple[int, int]] = []      # results for attempts sent elsewhere
        self.acks: dict[bytes, dict[str, None]] = {}   # ordered sets: duplicates acked once
        self.cannot: dict[str, str] = {}   # refusals retrying the host will not change: why
        self.ended: list[work.Ended] = []
        self.touched = work.Touched()
        self.kept: list[tuple] = []     # slots freed before commit, for restore()

    def record(self, conn, live: Live, now: float) -> bool:
        """Write the batch in the caller's transaction; True when a failure was recorded (a
        ban may now keep a host off a job for a while)."""
        deltas, touched = Deltas(), self.touched
        self.foreign = []
        self.ended = work.end_attempts(conn, self.results, now, deltas, touched,
                                       live.failure_policy, defer=True, hosts=self.hosts,
                                       foreign=self.foreign)
        if self.foreign:
            live.errors["foreign_completion"] += len(self.foreign)
            log.warning("%d completion(s) or refusal(s) came from a worker the attempt was not "
                        "sent to; ignored: %s", len(self.foreign),
                        ", ".join(f"{f}.{n}" for f, n in self.foreign[:10]))
        bans = {(e.job_id, e.host_id): f"refused: {self.cannot[e.attempt_id]}"
                for e in self.ended if e.attempt_id in self.cannot}
        if bans:
            deltas.flush(conn)
            live.failure_policy.ban(conn, bans, now, touched)
        # Frames of layers nobody waits on frame by frame need no dependents looked up.
        cache = live.layer_cache
        targets = {lid for lid in set(deltas.completed_layers)
                   if lid not in cache or cache[lid]["frame_dependents"]}
        work.settle(conn, deltas, touched, now, targets)
        return bool(bans) or any(isinstance(r, p.Completion) and r.exit_status != 0
                                 for r in self.results.values())

    def release(self, live: Live) -> None:
        """Free in the registry the slots of the attempts the recorded batch ends, before the
        transaction commits (so the pass sharing it can fill them); restore() undoes it should
        the transaction fail."""
        ends = [(e.host_id, e.attempt_id) for e in self.ended]
        ends += [(hid, f"{k[0]}.{k[1]}") for hid, k, _ in self.lost]
        for hid, aid in ends:
            w = live.registry.by_id.get(hid)
            if w is not None:
                token = w.take_out(aid)
                if token is not None:
                    self.kept.append((w, aid, token))

    def restore(self) -> None:
        for w, aid, token in reversed(self.kept):
            w.put_back(aid, token)
        self.kept = []

    def acknowledge(self, out: Outbox) -> None:
        """Stage the acknowledgements and the changed rows (sent if the batch commits)."""
        for identity, ids in self.acks.items():
            out.send(identity, p.CompleteAck(list(ids)))
        out.note(self.touched)

    def committed(self, live: Live, intake: Intake) -> None:
        """The batch is durable: the attempts it ended run nowhere any more."""
        for hid, k, _ in self.lost:
            aid = f"{k[0]}.{k[1]}"
            intake.lost_pending.discard(aid)
            w = live.registry.by_id.get(hid)
            if w is not None:
                w.remove(aid)      # ended now, or already ended: either way not running there
        live.counters["completions"] += len(self.ended)
        for e in self.ended:
            w = live.registry.by_id.get(e.host_id)
            if w is not None:
                w.remove(e.attempt_id)
