"""Notices from the other supervisors sharing the database (see `farmbus`): what they changed
reaches this supervisor's subscribers, its workers and its dispatcher.

- rows they changed are published here too (a GUI on any supervisor sees the whole farm);
- hosts they changed that are connected here take the new lock, slots, tags and drain at once
  (a lock through another supervisor stops dispatch to the host here);
- their kills of attempts on workers connected here are sent to those workers;
- when frames may have become runnable, a dispatch pass runs for the workers here;
- settings the live view keeps (admission policy, path maps, licence terms) changed through
  another supervisor are read again;
- a log asked of a worker connected here is read from it and sent back in pieces
  (`logrelay`); the pieces of a log this supervisor asked for answer its client.
"""

from __future__ import annotations

import logging

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.farmbus import read
from supervisor.live import default_admission
from supervisor.store import hostadmin
from supervisor.store import hosts as host_store
from supervisor.store import work

log = logging.getLogger(__name__)


def handle(cx: Context, payloads: list[str | None]) -> bool:
    """Act on notices; True when subscribers must re-read everything (notices were lost or
    listed only part of what changed)."""
    resync = False
    touched = work.Touched()
    refresh: set[int] = set()
    kills: list[tuple[str, int]] = []
    recheck: set[int] = set()
    reason = ""
    registry = cx.live.registry
    for payload in payloads:
        if payload is None:       # the bus connection was lost: notices may be missing
            resync = True
            cx.out.wake()
            refresh.update(registry.by_id)
            recheck.update(registry.by_id)
            continue
        n = read(payload)
        if n is None or n.sv == cx.id or (n.to and n.to != cx.id):
            continue
        if n.reload:
            reload_settings(cx, n.reload)
        if n.log_ask is not None:
            _ask_log(cx, n.sv, n.log_ask)
        if n.log_piece is not None:
            answer = cx.live.logs.piece(n.log_piece)
            if answer is not None:
                cx.out.reply(*answer)
        touched.merge(work.Touched(set(n.jobs), set(n.layers), set(n.frames), set(n.hosts)))
        resync = resync or n.partial
        if n.wake:
            cx.out.wake()
        refresh.update(h for h in n.hosts if h in registry.by_id)
        kills += [(aid, hid) for aid, hid in n.kills if hid in registry.by_id]
        if n.recheck == [-1]:
            recheck.update(registry.by_id)
        else:
            recheck.update(h for h in n.recheck if h in registry.by_id)
        reason = n.reason or reason
    cx.out.note(touched)
    if refresh:
        _refresh(cx, sorted(refresh))
    if kills:
        cx.kill(cx.out, kills, reason or "killed through another supervisor")
    if recheck:
        _recheck(cx, sorted(recheck), reason or "killed through another supervisor")
    return resync


def reload_settings(cx: Context, which: list[str]) -> None:
    """Read again the settings another supervisor changed."""
    if "admission" in which:
        cx.live.admission = cx.read(
            lambda c: hostadmin.admission_policy(c, default_admission(cx.cfg)))
    if "path maps" in which:
        cx.live.path_map_rows = cx.read(hostadmin.path_map_rows)
    if "licences" in which and cx.billing is not None:
        cx.read(cx.billing.licensing.load)
        cx.out.wake()           # more (or fewer) workers may take frames now


def _ask_log(cx: Context, supervisor: str, ask: list) -> None:
    token, host_id, attempt_id, offset, limit = ask
    w = cx.live.registry.by_id.get(host_id)
    if w is None or w.identity is None:
        return          # not ours (any more): the asker times out and says so
    mine = cx.live.logs.ask_for(supervisor, token, cx.mono())
    cx.out.send(w.identity, p.LogRequest(mine, attempt_id, offset, limit))


def _refresh(cx: Context, host_ids: list[int]) -> None:
    """Bring the live view of these hosts in line with the database."""
    registry = cx.live.registry
    changed = False
    for row in cx.read(lambda c: host_store.live_settings(c, host_ids)):
        w = registry.by_id.get(row.id)
        if w is None:
            continue
        before = (w.locked, w.lock_slots, w.slots, w.tags, w.draining, w.banned)
        w.locked, w.lock_slots = row.lock == "LOCKED", row.lock_slots
        w.slots = w.offered if row.slots_override is None else row.slots_override
        w.tags = frozenset(hostadmin.effective_tags(row))
        draining = row.drain is not None
        if w.identity is not None and draining != w.draining:
            cx.out.send(w.identity, p.Drain(then=row.drain or "stay", cancel=not draining))
        w.draining = draining
        if row.lock_kind == "banned" and not w.banned:
            w.banned = True
            if w.identity is not None:
                cx.out.send(w.identity, p.Refused(f"{w.name} is banned from this farm",
                                                  retry_after=cx.cfg.admission_retry))
                registry.disconnect(w, cx.mono())
                w.clear()
        elif row.lock_kind != "banned":
            w.banned = False
        changed = changed or before != (w.locked, w.lock_slots, w.slots, w.tags, w.draining,
                                        w.banned)
    if changed:          # match caches are kept until a host's attributes change
        registry.version += 1


def _recheck(cx: Context, host_ids: list[int], reason: str) -> None:
    """Kill what workers here run that the database no longer has running on them."""
    running = cx.read(lambda c: work.running_on_hosts(c, host_ids))
    registry = cx.live.registry
    for hid in host_ids:
        w = registry.by_id.get(hid)
        if w is None or w.identity is None:
            continue
        wanted = {f"{a.frame_id}.{a.number}" for a in running.get(hid, [])}
        gone = [aid for aid in w.running if aid not in wanted]
        if gone:
            cx.out.send(w.identity, p.Kill(gone, reason))
