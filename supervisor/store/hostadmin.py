"""Host management in the database: admission, slots, tags, locks by name/pattern/tag, drain,
lock schedules and central path maps.  One small helper per command; bad input raises
ControlError and changes nothing."""

from __future__ import annotations

import ipaddress
import re
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from cuefarm import pathmap
from cuefarm import protocol as p
from cuefarm.keys import fingerprint
from supervisor.store import keys as key_store
from supervisor.store.errors import ControlError
from supervisor.store.models import Admission, Host, LockSchedule, PathMap, Setting

TAG_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}", re.ASCII)
TIME_RE = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)
ADMISSION_MODES = ("any", "ranges", "named")
DRAIN_THEN = ("exit", "reboot", "stay")
OS_NAMES = ("linux", "windows", "darwin")


def effective_tags(row: Any) -> list[str]:
    """What the worker reports, plus what an admin added, less what an admin removed."""
    tags = set(row.tags or []) | set(row.tags_added or [])
    return sorted(tags - set(row.tags_removed or []))


# --- which hosts ---------------------------------------------------------------------------------

def resolve_hosts(conn: Connection, targets: list[str]) -> list[Any]:
    """Hosts named by exact names, glob patterns ("render-*") or "tag:NAME"; a name that
    matches nothing is an error, so a typo never silently locks nothing."""
    if not targets:
        raise ControlError("no hosts given", "hosts")
    rows = conn.execute(select(Host.id, Host.name, Host.tags, Host.tags_added,
                               Host.tags_removed)).all()
    chosen: dict[int, Any] = {}
    for target in targets:
        if target.startswith("tag:"):
            tag = target[4:]
            found = [r for r in rows if tag in effective_tags(r)]
        elif any(ch in target for ch in "*?["):
            found = [r for r in rows if fnmatchcase(r.name, target)]
        else:
            found = [r for r in rows if r.name == target]
        if not found:
            raise ControlError(f"no host matches {target!r}", "hosts")
        chosen.update((r.id, r) for r in found)
    return list(chosen.values())


def _one_host(conn: Connection, name: str) -> Any:
    row = conn.execute(select(Host.id, Host.name, Host.tags, Host.tags_added, Host.tags_removed,
                              Host.os).where(Host.name == name)).first()
    if row is None:
        raise ControlError(f"no host named {name!r}", "host")
    return row


# --- slots, tags, drain --------------------------------------------------------------------------

def set_slots(conn: Connection, name: str, slots: int | None) -> int:
    if slots is not None and (isinstance(slots, bool) or not 0 <= slots <= 4096):
        raise ControlError(f"slots must be between 0 and 4096, not {slots}", "slots")
    row = _one_host(conn, name)
    conn.execute(update(Host).where(Host.id == row.id).values(slots_override=slots))
    return row.id


def set_tags(conn: Connection, name: str, add: list[str], remove: list[str]) -> int:
    for tag in [*add, *remove]:
        if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
            raise ControlError(f"{tag!r} is not a valid tag", "tags")
    row = _one_host(conn, name)
    added = (set(row.tags_added or []) | set(add)) - set(remove)
    removed = (set(row.tags_removed or []) | set(remove)) - set(add)
    conn.execute(update(Host).where(Host.id == row.id)
                 .values(tags_added=sorted(added), tags_removed=sorted(removed)))
    return row.id


def set_drain(conn: Connection, targets: list[str], then: str, cancel: bool) -> list[Any]:
    if then not in DRAIN_THEN:
        raise ControlError(f"after draining: one of {', '.join(DRAIN_THEN)}, not {then!r}",
                           "then")
    rows = resolve_hosts(conn, targets)
    conn.execute(update(Host).where(Host.id.in_([r.id for r in rows]))
                 .values(drain=None if cancel else then))
    return rows


# --- admission -----------------------------------------------------------------------------------

def admission_policy(conn: Connection, default: dict[str, Any]) -> dict[str, Any]:
    row = conn.execute(select(Setting.value).where(Setting.key == "admission")).scalar()
    return row or default


def check_policy(mode: str | None, networks: list[str] | None,
                 patterns: list[str] | None) -> None:
    if mode is not None and mode not in ADMISSION_MODES:
        raise ControlError(f"admission mode is one of {', '.join(ADMISSION_MODES)}, not {mode!r}",
                           "mode")
    for net in networks or []:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ControlError(f"{net!r} is not an address range (e.g. 10.0.0.0/16)",
                               "networks") from None
    for pat in patterns or []:
        if not pat or len(pat) > 256:
            raise ControlError(f"{pat!r} is not a host name pattern", "patterns")


def set_admission(conn: Connection, default: dict[str, Any], mode: str | None,
                  networks: list[str] | None, patterns: list[str] | None) -> dict[str, Any]:
    check_policy(mode, networks, patterns)
    policy = dict(admission_policy(conn, default))
    if mode is not None:
        policy["mode"] = mode
    if networks is not None:
        policy["networks"] = [str(ipaddress.ip_network(n, strict=False)) for n in networks]
    if patterns is not None:
        policy["patterns"] = list(patterns)
    if conn.execute(select(Setting.key).where(Setting.key == "admission")).first():
        conn.execute(update(Setting).where(Setting.key == "admission").values(value=policy))
    else:
        conn.execute(insert(Setting).values(key="admission", value=policy))
    return policy


MAX_PENDING = 1000     # workers listed as pending at most: made-up names do not fill the table


def admit_many(conn: Connection, policy: dict[str, Any], workers: list[tuple[str, str]],
               now: float, keys: dict[str, str] | None = None,
               unknown: dict[str, str] | None = None) -> dict[str, str]:
    """Which of (name, address) may not join, and why; the refused are listed as pending
    (with the key each connected with, from `keys` by name), MAX_PENDING at most.  Those in
    `unknown` (name -> why: keys the farm does not know) are refused whatever the policy,
    unless banned (then the ban says so)."""
    keys, unknown = keys or {}, unknown or {}
    names = [n for n, _ in workers]
    known = dict(conn.execute(select(Admission.name, Admission.state)
                              .where(Admission.name.in_(names))).all())
    refused: dict[str, str] = {}
    for name, address in workers:
        why = _refusal(policy, known.get(name), name, address)
        if name in unknown and known.get(name) != "banned":
            why = unknown[name]
        if why is None:
            continue
        refused[name] = why
        if name not in known:
            pending = conn.execute(select(func.count()).select_from(Admission)
                                   .where(Admission.state == "pending")).scalar()
            if pending >= MAX_PENDING:
                continue
            conn.execute(insert(Admission).values(name=name, state="pending", address=address,
                                                  reason=why, first_seen=now, last_seen=now,
                                                  key=keys.get(name) or None))
            known[name] = "pending"
        elif known[name] != "banned":
            # Admitted by name once, but with a key nobody admitted: pending again.
            conn.execute(update(Admission).where(Admission.name == name)
                         .values(address=address, reason=why, last_seen=now,
                                 key=keys.get(name) or None,
                                 state="pending" if name in unknown else known[name]))
    return refused


def _networks(policy: dict[str, Any]) -> list[Any]:
    """The policy's address ranges, leaving out any that do not parse (never raising at a
    registration: the rest of the policy still applies)."""
    nets = []
    for text in policy.get("networks", []):
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except (TypeError, ValueError):
            continue
    return nets


def _refusal(policy: dict[str, Any], entry: str | None, name: str, address: str) -> str | None:
    if entry == "banned":
        return f"{name} is banned from this farm"
    mode = policy.get("mode", "any")
    if entry == "admitted" or mode == "any":
        return None
    if mode not in ADMISSION_MODES:
        # main() refuses such a setting; a policy stored by an older build must still not
        # pass silently as "named": say what is wrong.
        return f"{name} refused: this farm's admission mode {mode!r} is not one of " \
               f"{', '.join(ADMISSION_MODES)} (an admin should run cuefarm admission --mode)"
    if mode == "ranges":
        if any(fnmatchcase(name, pat) for pat in policy.get("patterns", [])):
            return None
        try:
            ip = ipaddress.ip_address(address) if address else None
        except ValueError:
            ip = None
        if ip is not None and any(ip in net for net in _networks(policy)):
            return None
        return f"{name} ({address or 'unknown address'}) is outside the admitted ranges and names"
    return f"{name} is not on this farm's list of admitted hosts"


def admission_control(conn: Connection, action: str, names: list[str], reason: str,
                      now: float) -> list[int]:
    """Admit, ban or forget workers by name.  A ban also takes the named hosts off the farm at
    once: locked to 0 slots (lock kind "banned") and DOWN; admitting or forgetting lifts that
    lock.  Returns the ids of the host rows changed (the caller purges a ban's frames)."""
    if action not in ("admit", "ban", "forget"):
        raise ControlError(f"unknown admission action {action!r} (admit, ban, forget)", "action")
    if not names:
        raise ControlError("no host names given", "names")
    for name in names:
        if not name or len(name) > 256:
            raise ControlError(f"{name!r} is not a host name", "names")
        if action == "forget":
            conn.execute(delete(Admission).where(Admission.name == name))
            continue
        state = "admitted" if action == "admit" else "banned"
        row = conn.execute(select(Admission.name, Admission.key)
                           .where(Admission.name == name)).first()
        if action == "admit" and row is not None and row.key:
            # The key it was pending with is the one admitted: bound to its name now, so
            # another key cannot come first and take the name.
            key_store.bind_worker(conn, name, row.key, now, "admitted by an admin")
        if row is not None:
            conn.execute(update(Admission).where(Admission.name == name)
                         .values(state=state, reason=reason))
        else:
            conn.execute(insert(Admission).values(name=name, state=state, reason=reason,
                                                  first_seen=now, last_seen=now))
    return _ban_hosts(conn, names) if action == "ban" else _unban_hosts(conn, names)


def _ban_hosts(conn: Connection, names: list[str]) -> list[int]:
    ids = list(conn.execute(select(Host.id).where(Host.name.in_(names))).scalars())
    if ids:
        conn.execute(update(Host).where(Host.id.in_(ids))
                     .values(lock="LOCKED", lock_kind="banned", lock_slots=0,
                             lock_override_until=0.0, state="DOWN"))
    return ids


def _unban_hosts(conn: Connection, names: list[str]) -> list[int]:
    ids = list(conn.execute(select(Host.id).where(Host.name.in_(names),
                                                  Host.lock_kind == "banned")).scalars())
    if ids:
        conn.execute(update(Host).where(Host.id.in_(ids))
                     .values(lock="OPEN", lock_kind="", lock_slots=None))
    return ids


def admission_rows(conn: Connection) -> list[dict[str, Any]]:
    return [{**dict(r._mapping), "key": fingerprint(r.key) if r.key else ""}
            for r in conn.execute(
                select(Admission.name, Admission.state, Admission.address, Admission.reason,
                       Admission.first_seen, Admission.last_seen, Admission.key)
                .order_by(Admission.state, Admission.name))]


# --- schedules -----------------------------------------------------------------------------------

def add_schedule(conn: Connection, body: p.SetSchedule) -> int:
    target = body.target.strip()
    if not target or len(target) > 256:
        raise ControlError("a schedule targets a host name pattern or tag:NAME", "target")
    if target.startswith("tag:") and not TAG_RE.fullmatch(target[4:]):
        raise ControlError(f"{target[4:]!r} is not a valid tag", "target")
    if not body.days or any(isinstance(d, bool) or not 0 <= d <= 6 for d in body.days):
        raise ControlError("days are 0 (Monday) to 6 (Sunday)", "days")
    for field, value in (("start", body.start), ("end", body.end)):
        if not TIME_RE.fullmatch(value or ""):
            raise ControlError(f"{value!r} is not a time of day HH:MM", field)
    if body.start == body.end:
        raise ControlError("a lock window needs different start and end times", "end")
    return conn.execute(insert(LockSchedule).values(
        target=target, days=sorted(set(body.days)), start=body.start, end=body.end,
        purge=body.purge).returning(LockSchedule.id)).scalar_one()


def delete_schedule(conn: Connection, schedule_id: int) -> None:
    if not conn.execute(delete(LockSchedule).where(LockSchedule.id == schedule_id)).rowcount:
        raise ControlError(f"no schedule with id {schedule_id}", "id")


def schedule_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(
        select(LockSchedule.id, LockSchedule.target, LockSchedule.days, LockSchedule.start,
               LockSchedule.end, LockSchedule.purge).order_by(LockSchedule.id))]


# --- path maps -----------------------------------------------------------------------------------

def add_path_map(conn: Connection, body: p.AddPathMap) -> int:
    if body.os not in OS_NAMES:
        raise ControlError(f"os is one of {', '.join(OS_NAMES)}, not {body.os!r}", "os")
    rule = p.PathRule(body.source, body.target)
    problem = pathmap.rule_problem(rule)
    if problem:
        raise ControlError(problem, "source")
    if body.tag is not None and not TAG_RE.fullmatch(body.tag):
        raise ControlError(f"{body.tag!r} is not a valid tag", "tag")
    position = body.position
    if position is None:
        position = (conn.execute(select(func.max(PathMap.position))).scalar() or 0) + 1
    return conn.execute(insert(PathMap).values(os=body.os, tag=body.tag, position=position,
                                               source=body.source, target=body.target)
                        .returning(PathMap.id)).scalar_one()


def delete_path_map(conn: Connection, rule_id: int) -> None:
    if not conn.execute(delete(PathMap).where(PathMap.id == rule_id)).rowcount:
        raise ControlError(f"no path map rule with id {rule_id}", "id")


def path_map_rows(conn: Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(
        select(PathMap.id, PathMap.os, PathMap.tag, PathMap.position, PathMap.source,
               PathMap.target).order_by(PathMap.position, PathMap.id))]


def central_rules(rows: list[dict[str, Any]], os_name: str, tags: set[str]) -> list[p.PathRule]:
    """The central rules for a host: its OS's rules, tag-specific ones first, in position
    order."""
    mine = [r for r in rows if r["os"] == os_name and (r["tag"] is None or r["tag"] in tags)]
    mine.sort(key=lambda r: (r["tag"] is None, r["position"], r["id"]))
    return [p.PathRule(r["source"], r["target"]) for r in mine]


def schedule_targets(conn: Connection, host_ids: list[int] | None,
                     scheduled_only: bool = False) -> list[Any]:
    """Hosts as lock schedules see them (name, tags, lock, lock kind, override): these ids, or
    all hosts; with `scheduled_only`, only those a schedule locked or an override covers."""
    q = select(Host.id, Host.name, Host.tags, Host.tags_added, Host.tags_removed, Host.lock,
               Host.lock_kind, Host.lock_override_until)
    if host_ids is not None:
        q = q.where(Host.id.in_(host_ids))
    if scheduled_only:
        q = q.where((Host.lock_kind == "schedule") | (Host.lock_override_until > 0))
    return conn.execute(q).all()


def set_schedule_lock(conn: Connection, host_id: int, locked: bool | None) -> None:
    """A schedule locks (True) or opens (False) a host, ending any manual override; None only
    ends the override."""
    values: dict[str, Any] = {"lock_override_until": 0.0}
    if locked is True:
        values.update(lock="LOCKED", lock_kind="schedule", lock_slots=None)
    elif locked is False:
        values.update(lock="OPEN", lock_kind="")
    conn.execute(update(Host).where(Host.id == host_id).values(**values))
