"""Hosts in the database: registration, liveness, periodic figures."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, text, update

from cuefarm import protocol as p
from cuefarm import requirements as reqs
from cuefarm.states import HostState
from supervisor.matching import mismatch
from supervisor.registry import Worker
from supervisor.store.hostadmin import effective_tags
from supervisor.store.models import Host, Layer
from supervisor.store.telemetry import array_literal, relaxed_commit


def upsert_hosts(conn: Connection, regs: list[tuple[p.Register, str]], supervisor_id: str,
                 now: float) -> dict[str, Any]:
    """Create or refresh hosts from their registrations (with peer addresses), set-based;
    return their rows (admin settings too) by name."""
    names = [reg.name for reg, _ in regs]
    existing = set(conn.execute(select(Host.name).where(Host.name.in_(names))
                                .with_for_update()).scalars())
    rows = []
    for reg, address in regs:
        rows.append(dict(
            n=reg.name, hostname=reg.hostname[:256], os=reg.os[:32], cores=reg.cores,
            memory_mb=reg.memory_mb, slots_configured=reg.slots, state=HostState.UP.value,
            last_seen=now, supervisor_id=supervisor_id, version=reg.version[:32],
            gpus=reg.gpus, tags=sorted(set(reg.tags))[:64], address=address[:64],
            disk_free_mb=reg.disk_free_mb, nimby=reg.nimby, draining=False, registered_at=now))
    new = [r for r in rows if r["n"] not in existing]
    if new:
        conn.execute(insert(Host), [
            {**{k: v for k, v in r.items() if k != "n"}, "name": r["n"], "lock": "OPEN",
             "lock_kind": "", "memory_free_mb": r["memory_mb"], "load": 0.0,
             "cpu_percent": 0.0, "tags_added": [], "tags_removed": [],
             "lock_override_until": 0.0} for r in new])
    old = [r for r in rows if r["n"] in existing]
    if old:
        conn.execute(update(Host).where(Host.name == bindparam("n"))
                     .values(**{k: bindparam(k) for k in old[0] if k != "n"})
                     .execution_options(synchronize_session=False), old)
    return {r.name: r for r in conn.execute(
        select(Host.id, Host.name, Host.lock, Host.lock_slots, Host.slots_override, Host.tags,
               Host.tags_added, Host.tags_removed, Host.drain).where(Host.name.in_(names)))}


def end_drain(conn: Connection, host_ids: list[int]) -> None:
    """The drain of these hosts is done (their rqd came back after exiting for it)."""
    conn.execute(update(Host).where(Host.id.in_(host_ids)).values(drain=None))


def mark_down(conn: Connection, host_ids: list[int]) -> None:
    if host_ids:
        conn.execute(update(Host).where(Host.id.in_(host_ids))
                     .values(state=HostState.DOWN.value))


def write_figures(conn: Connection, figures: list[dict[str, Any]]) -> None:
    """Batch of heartbeat figures: dicts with hid, seen, load, cpu, free, disk, nimby,
    draining.  PostgreSQL gets one statement over unnested arrays (thousands of hosts)."""
    if not figures:
        return
    if conn.dialect.name == "postgresql":
        cols = {k: array_literal([f[k] for f in figures]) for k in figures[0]}
        relaxed_commit(conn)
        conn.execute(text(
            "UPDATE host SET last_seen = t.seen, load = t.load, cpu_percent = t.cpu,"
            " memory_free_mb = t.free, disk_free_mb = t.disk, nimby = t.nimby,"
            " draining = t.draining FROM unnest(CAST(:hid AS bigint[]),"
            " CAST(:seen AS float8[]), CAST(:load AS float8[]), CAST(:cpu AS float8[]),"
            " CAST(:free AS bigint[]), CAST(:disk AS bigint[]), CAST(:nimby AS boolean[]),"
            " CAST(:draining AS boolean[])) AS t(hid, seen, load, cpu, free, disk, nimby,"
            " draining) WHERE host.id = t.hid"), cols)
        return
    conn.execute(update(Host).where(Host.id == bindparam("hid"))
                 .values(last_seen=bindparam("seen"), load=bindparam("load"),
                         cpu_percent=bindparam("cpu"), memory_free_mb=bindparam("free"),
                         disk_free_mb=bindparam("disk"), nimby=bindparam("nimby"),
                         draining=bindparam("draining"))
                 .execution_options(synchronize_session=False), figures)


def up_hosts(conn: Connection) -> list[dict[str, Any]]:
    """Hosts the database believes UP (after a restart: the ones that should come back)."""
    return [dict(r._mapping) for r in conn.execute(
        select(Host.id, Host.name, Host.lock, Host.slots_configured, Host.supervisor_id,
               Host.last_seen)
        .where(Host.state == HostState.UP.value))]


def stale_hosts(conn: Connection, before: float) -> list[dict[str, Any]]:
    """Hosts marked UP whose last report is older than `before` (wall clock, any supervisor)."""
    return [dict(r._mapping) for r in conn.execute(
        select(Host.id, Host.name).where(Host.state == HostState.UP.value,
                                         Host.last_seen < before))]


def served_elsewhere(conn: Connection, host_ids: list[int], owner: str,
                     fresh_since: float) -> set[int]:
    """Those of `host_ids` UP under another owner than `owner` and reported on since
    `fresh_since` (epoch): another live supervisor serves them."""
    rows = conn.execute(select(Host.id, Host.supervisor_id, Host.state, Host.last_seen)
                        .where(Host.id.in_(host_ids))).all()
    return {r.id for r in rows if r.state == "UP" and r.supervisor_id not in ("", None, owner)
            and (r.last_seen or 0) >= fresh_since}


def host_names(conn: Connection, host_ids: list[int]) -> dict[int, str]:
    if not host_ids:
        return {}
    return dict(conn.execute(select(Host.id, Host.name).where(Host.id.in_(host_ids))).all())


def capable_hosts(conn: Connection, job_id: int) -> set[int]:
    """UP hosts (as the database knows them, whichever supervisor holds them) that could run
    at least one unfinished layer of the job: the hosts whose failures say the job, not the
    farm, is at fault when every one of them has failed it."""
    layers = conn.execute(select(Layer.id, Layer.tags, Layer.os, Layer.hosts, Layer.omit_hosts,
                                 Layer.memory, Layer.gpus, Layer.slots, Layer.slots_mode,
                                 Layer.requirements)
                          .where(Layer.job_id == job_id,
                                 (Layer.waiting + Layer.running + Layer.depend + Layer.dead) > 0)
                          ).all()
    hosts = conn.execute(select(Host.id, Host.name, Host.os, Host.memory_mb, Host.memory_free_mb,
                                Host.cores, Host.gpus, Host.tags, Host.tags_added,
                                Host.tags_removed, Host.slots_override, Host.slots_configured,
                                Host.load).where(Host.state == "UP")).all()
    workers = []
    for h in hosts:
        slots = h.slots_configured if h.slots_override is None else h.slots_override
        workers.append(Worker(h.id, h.name, slots=slots, memory_mb=h.memory_mb, os=h.os,
                              cores=h.cores, gpus=h.gpus, tags=frozenset(effective_tags(h)),
                              load=h.load))
    out: set[int] = set()
    for lay in layers:
        layer = dict(lay._mapping)
        try:
            parsed = reqs.parse(layer["requirements"]) if layer["requirements"] else None
        except reqs.RequirementError:
            continue
        out.update(w.host_id for w in workers
                   if w.host_id not in out and mismatch(layer, w, parsed) is None)
    return out


def host_id(conn: Connection, name: str) -> int | None:
    return conn.execute(select(Host.id).where(Host.name == name)).scalar()


def admin_settings(conn: Connection, host_id: int) -> Any:
    """What an admin sets on a host that the live view keeps: slots, tags, drain."""
    return conn.execute(select(Host.slots_override, Host.tags, Host.tags_added,
                               Host.tags_removed, Host.drain).where(Host.id == host_id)).one()


def live_settings(conn: Connection, host_ids: list[int]) -> list[Any]:
    """What the live view keeps of these hosts that anyone may change through any supervisor:
    lock, slots, tags, drain."""
    return conn.execute(select(Host.id, Host.lock, Host.lock_kind, Host.lock_slots,
                               Host.slots_override, Host.tags, Host.tags_added,
                               Host.tags_removed, Host.drain)
                        .where(Host.id.in_(host_ids))).all()


def path_facts(conn: Connection, name: str) -> Any:
    """What the path rules of a host depend on (id, os, tags); None for no such host."""
    return conn.execute(select(Host.id, Host.os, Host.tags, Host.tags_added, Host.tags_removed)
                        .where(Host.name == name)).first()
