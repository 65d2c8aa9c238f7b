"""Weekly lock windows for workstations, evaluated in the site's timezone.

A window (days, start, end) is active from `start` to `end` on each listed day; an end at or
before the start runs past midnight into the next day.  A manual lock or unlock overrides the
schedule until the host's next window edge; after that edge the schedule applies again (it may
unlock a manual lock or lock a manual unlock).  A manual lock on a host no schedule covers stays
until an admin unlocks it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, tzinfo
from fnmatch import fnmatchcase
from typing import Any
from zoneinfo import ZoneInfo

from supervisor.context import Context
from supervisor.store import hostadmin
from supervisor.store.control import Outcome, kill_running_on_hosts
from supervisor.store.work import settle


log = logging.getLogger(__name__)


def site_timezone(name: str) -> tzinfo:
    """The named IANA zone, or this machine's local zone when empty."""
    if name:
        return ZoneInfo(name)
    return datetime.now().astimezone().tzinfo


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def active(window: dict[str, Any], when: datetime) -> bool:
    start, end = _minutes(window["start"]), _minutes(window["end"])
    now = when.hour * 60 + when.minute
    today, yesterday = when.weekday(), (when.weekday() - 1) % 7
    if start < end:
        return today in window["days"] and start <= now < end
    return ((today in window["days"] and now >= start)
            or (yesterday in window["days"] and now < end))


def next_edge(windows: list[dict[str, Any]], when: datetime) -> datetime | None:
    """The first window start or end strictly after `when` (None without windows)."""
    best = None
    midnight = when.replace(hour=0, minute=0, second=0, microsecond=0)
    for day in range(-1, 9):
        date = midnight + timedelta(days=day)
        for w in windows:
            if date.weekday() not in w["days"]:
                continue
            start, end = _minutes(w["start"]), _minutes(w["end"])
            edges = [date + timedelta(minutes=start),
                     date + timedelta(minutes=end + (0 if end > start else 24 * 60))]
            for edge in edges:
                if edge > when and (best is None or edge < best):
                    best = edge
    return best


def applies(window: dict[str, Any], name: str, tags: list[str]) -> bool:
    target = window["target"]
    if target.startswith("tag:"):
        return target[4:] in tags
    return fnmatchcase(name, target)


def override_until(cx: Context, conn, host_ids: list[int]) -> dict[int, float]:
    """For a manual lock or unlock: until when it beats the schedules (epoch; 0 = none)."""
    windows = hostadmin.schedule_rows(conn)
    if not windows:
        return {}
    tz = site_timezone(cx.cfg.timezone)
    when = datetime.fromtimestamp(cx.clock(), tz)
    out = {}
    for r in hostadmin.schedule_targets(conn, host_ids):
        mine = [w for w in windows if applies(w, r.name, hostadmin.effective_tags(r))]
        edge = next_edge(mine, when)
        if edge is not None:
            out[r.id] = edge.timestamp()
    return out


def apply(cx: Context) -> None:
    """Lock or unlock hosts whose window state differs from their lock (periodic)."""
    now = cx.clock()
    out = Outcome()
    changed: dict[int, bool] = {}
    with cx.begin() as (conn, effects):
        windows = hostadmin.schedule_rows(conn)
        # Most farms have few schedules: without any, only hosts a schedule locked (or a
        # manual override) need a look, not thousands of rows every few seconds.
        hosts = hostadmin.schedule_targets(conn, None, scheduled_only=not windows)
        if not hosts:
            return
        when = datetime.fromtimestamp(now, site_timezone(cx.cfg.timezone))
        purge_ids = []
        for h in hosts:
            if h.lock_override_until and h.lock_override_until > now:
                continue
            if h.lock_kind == "banned":     # an admission ban, not a lock schedules undo
                continue
            mine = [w for w in windows if applies(w, h.name, hostadmin.effective_tags(h))]
            live = [w for w in mine if active(w, when)]
            # A manual lock or unlock made while a schedule applied to the host overrode it
            # until the next edge; once that edge has passed, the schedule applies again,
            # whichever way the admin had set the host.  A manual lock on a host no schedule
            # covered (no override time) is left alone.
            expired = bool(h.lock_override_until) and bool(mine)
            manual_locked = h.lock == "LOCKED" and h.lock_kind != "schedule"
            if live and (h.lock == "OPEN" or (expired and manual_locked)):
                hostadmin.set_schedule_lock(conn, h.id, True)
                changed[h.id] = True
                if any(w["purge"] for w in live):
                    purge_ids.append(h.id)
            elif not live and h.lock == "LOCKED" and (h.lock_kind == "schedule" or expired):
                hostadmin.set_schedule_lock(conn, h.id, False)
                changed[h.id] = False
            elif h.lock_override_until:
                hostadmin.set_schedule_lock(conn, h.id, None)
        if purge_ids:
            kill_running_on_hosts(conn, purge_ids, out)
        settle(conn, out.deltas, out.touched, now)
        out.touched.hosts.update(changed)
        cx.kill(effects, out.kills)
        effects.note(out.touched)
        if changed:
            effects.wake()
    for host_id, locked in changed.items():
        w = cx.live.registry.by_id.get(host_id)
        if w is not None:
            w.locked, w.lock_slots = locked, None
        log.info("schedule %s %s", "locked" if locked else "unlocked",
                 w.name if w else host_id)
