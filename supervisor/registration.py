"""Worker registration, in batches: admission, host rows, and adopting what workers run.

Registrations arriving in one turn share one transaction, so a farm of thousands of workers
reconnecting after a supervisor restart costs a few set-based statements per batch rather than
a few round trips per worker.  For each worker: completions it kept are accepted (once); what
the database believes it runs but it does not report is requeued (the process is known gone);
what it runs that the database gave elsewhere is killed.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from cuefarm import protocol as p
from cuefarm.keys import fingerprint
from supervisor.context import Context
from supervisor.store import hostadmin
from supervisor.store import hosts as host_store
from supervisor.store import work
from supervisor.store.counters import Deltas
from supervisor.store.models import parse_attempt_id

log = logging.getLogger(__name__)
BATCH = 1000


def _precheck(cx: Context, identity: bytes, reg: p.Register, mono: float) -> str | None:
    gate = cx.gate
    if gate is not None:
        # A host name is bound to one key: another key cannot take it over.
        public = cx.live.worker_keys.get(identity, "")
        bound_host = gate.table.workers.get(public)
        if bound_host is not None and bound_host != reg.name:
            cx.live.errors["key_mismatch"] += 1
            return f"this worker's key belongs to host {bound_host}, not {reg.name}"
        bound_key = gate.table.worker_keys.get(reg.name)
        if bound_key is not None and bound_key != public:
            cx.live.errors["key_mismatch"] += 1
            return (f"host {reg.name} is bound to another key ({fingerprint(bound_key)}); an "
                    f"admin can revoke that one: cuefarm keys revoke {fingerprint(bound_key)}")
    existing = cx.live.registry.by_name.get(reg.name)
    if (existing is not None and existing.identity not in (None, identity)
            and mono - existing.last_seen < cx.cfg.host_expiry):
        return f"a worker named {reg.name!r} is already connected; give this one another --name"
    if not reg.name.strip():     # (negative counts are refused when the message is decoded)
        return "registration with an empty name"
    return None


def flush(cx: Context) -> None:
    """Register the workers that asked this turn (up to BATCH; the rest next turn)."""
    if not cx.intake.registrations:
        return
    items = cx.intake.take_registrations(BATCH)
    mono = cx.mono()
    batch: dict[str, tuple[bytes, p.Register, str]] = {}
    for identity, reg, address in items:
        why = _precheck(cx, identity, reg, mono)
        if why:
            cx.out.send(identity, p.Refused(why, retry_after=cx.cfg.host_expiry))
        else:
            batch[reg.name] = (identity, reg, address)    # the latest wins
    if batch:
        try:
            _register(cx, batch)
        except SQLAlchemyError:
            # They are not registered: they will ask again (heartbeats get Reregister).
            log.exception("could not register %d workers", len(batch))


def _register(cx: Context, batch: dict[str, tuple[bytes, p.Register, str]]) -> None:
    now, mono = cx.clock(), cx.mono()
    live, cfg = cx.live, cx.cfg
    deltas, touched = Deltas(), work.Touched()
    completions: dict[tuple[int, int], p.Completion] = {}
    reported: dict[str, dict[tuple[int, int], p.RunningAttempt]] = {}
    coming: dict[str, set[tuple[int, int]]] = {}     # kept completions still to be sent
    completed_by: dict[str, list[tuple[int, int]]] = {}
    for name, (_, reg, _) in batch.items():
        if reg.farm_id and cx.farm_id and reg.farm_id != cx.farm_id:
            # What it ran and kept belongs to another farm (another database), whose attempt
            # ids mean other frames here: take none of it.  The worker sets it aside itself.
            log.warning("worker %s last served farm %s, not this one (%s): its running and "
                        "finished attempts are not ours", name, reg.farm_id, cx.farm_id)
            batch[name] = (batch[name][0], msgspec.structs.replace(
                reg, running=[], completions=[], kept=[]), batch[name][2])
            reg = batch[name][1]
        for c in reg.completions:
            key = parse_attempt_id(c.attempt_id)
            if key:
                completions[key] = c
                completed_by.setdefault(name, []).append(key)
        reported[name] = {k: r for r in reg.running if (k := parse_attempt_id(r.attempt_id))}
        coming[name] = {k for aid in reg.kept if (k := parse_attempt_id(aid))}
        # Launched by this run after the worker wrote this Register: its running list cannot
        # tell whether they run (the Launch was still on its way).
        w = live.registry.by_name.get(name)
        if w is not None:
            coming[name].update(k for aid, seq in w.launched.items()
                                if seq > reg.launch_seq and (k := parse_attempt_id(aid)))
    gate = cx.gate
    keys = {n: live.worker_keys.get(ident, "") for n, (ident, _, _) in batch.items()} \
        if gate is not None else {}
    # With keys, a worker whose key the farm does not know waits as pending (whatever the
    # admission mode) until an admin admits it, which binds its host name to that key.
    unknown = {n: f"{n} connected with a key this farm does not know ({fingerprint(k)})"
               for n, k in keys.items() if k not in gate.table.workers} if gate else {}
    with cx.begin() as (conn, out):
        refused = hostadmin.admit_many(conn, live.admission,
                                       [(n, addr) for n, (_, _, addr) in batch.items()], now,
                                       keys, unknown)
        accepted = {n: v for n, v in batch.items() if n not in refused}
        hosts = host_store.upsert_hosts(conn, [(reg, addr) for _, reg, addr in accepted.values()],
                                        cx.owner, now) if accepted else {}
        # A new run of an rqd that a drain made exit (or reboot): that drain is done.  Asking
        # it again would make the worker exit again at once, for ever.
        drained = {n for n, h in hosts.items()
                   if h.drain in ("exit", "reboot") and accepted[n][1].drained}
        if drained:
            host_store.end_drain(conn, [hosts[n].id for n in drained])
        # Each worker's completions count only for attempts that were sent to it.
        senders = {key: hosts[name].id for name, keys in completed_by.items()
                   if name in hosts for key in keys}
        foreign: list[tuple[int, int]] = []
        work.end_attempts(conn, {k: c for k, c in completions.items() if k in senders}, now,
                          deltas, touched, live.failure_policy, hosts=senders, foreign=foreign)
        if foreign:
            live.errors["foreign_completion"] += len(foreign)
            log.warning("%d completion(s) handed in at registration were for attempts sent to "
                        "another host; ignored", len(foreign))
        ids = [h.id for h in hosts.values()]
        believed = work.running_on_hosts(conn, ids)
        gone = {}
        for name, h in hosts.items():
            for a in believed.get(h.id, []):
                key = (a.frame_id, a.number)
                if (key not in reported[name] and key not in completions
                        and key not in coming[name]):
                    gone[key] = f"lost: {name} re-registered without it"
        work.end_attempts(conn, gone, now, deltas, touched)
        work.settle(conn, deltas, touched, now)
        kept = work.running_on_hosts(conn, ids)
        touched.hosts.update(h.id for h in hosts.values())
        out.note(touched)
        out.wake()
    for name, why in refused.items():
        identity = batch[name][0]
        log.warning("refused worker %s from %s: %s", name, batch[name][2] or "?", why)
        cx.out.send(identity, p.Refused(
            f"{why}; an admin can admit it with: cuefarm hosts admit {name}",
            retry_after=cfg.admission_retry))
    for name, (identity, reg, _) in accepted.items():
        _connect(cx, identity, reg, hosts[name], kept.get(hosts[name].id, []),
                 reported[name], mono, name in drained)
    if accepted:
        log.info("registered %d worker(s)%s", len(accepted),
                 f"; {len(gone)} frame(s) they no longer run were requeued" if gone else "")


def _connect(cx: Context, identity: bytes, reg: p.Register, host: Any, kept: list[Any],
             reported: dict[tuple[int, int], p.RunningAttempt], mono: float,
             drain_done: bool = False) -> None:
    """Bring the live view of one worker in line with what was committed; answer it."""
    drain = None if drain_done else host.drain
    registry, cfg, out = cx.live.registry, cx.cfg, cx.out
    w = registry.get_or_add(host.id, reg.name)
    w.offered = reg.slots
    w.slots = reg.slots if host.slots_override is None else host.slots_override
    w.locked, w.lock_slots = host.lock == "LOCKED", host.lock_slots
    w.memory_mb, w.os, w.cores, w.gpus = reg.memory_mb, reg.os, reg.cores, reg.gpus
    w.tags = frozenset(hostadmin.effective_tags(host))
    w.nimby, w.draining, w.own_rules = reg.nimby, drain is not None, list(reg.path_maps)
    w.banned = False
    registry.version += 1
    launched = dict(w.launched)
    w.clear()
    for a in kept:
        aid = f"{a.frame_id}.{a.number}"
        w.add(aid, a.slots, a.memory, a.gpus)
        if aid in launched:
            # Heartbeats prove its absence only once the worker has had its Launch.
            w.launched[aid] = launched[aid]
    registry.connect(w, identity, mono)
    out.send(identity, p.Registered(host.id, cfg.heartbeat_interval,
                                    cfg.host_expiry + cfg.release_after, farm_id=cx.farm_id))
    if drain:
        # rqd does not remember a drain it has not finished across its own restart (nor did
        # it get one sent while it was away): say it again.
        out.send(identity, p.Drain(then=drain))
    if reg.completions:
        out.send(identity, p.CompleteAck([c.attempt_id for c in reg.completions]))
    kept_keys = {(a.frame_id, a.number) for a in kept}
    strays = [r.attempt_id for key, r in reported.items() if key not in kept_keys]
    if strays:
        # It runs something the database gave to another host or stopped wanting: stop it.
        out.send(identity, p.Kill(strays, "not assigned to this host"))
