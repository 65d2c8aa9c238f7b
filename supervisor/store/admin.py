"""Wrangler and admin changes: jobs and layers after submission, projects, limits,
dependencies by hand.  One small helper per command; each raises ControlError on bad input."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.orm import aliased

from cuefarm.states import COMPLETE_STATES
from supervisor.store import counts, work
from supervisor.store.errors import ControlError
from supervisor.store.models import (Dependency, Frame, FrameDep, Host, Job, JobHost, Layer,
                                     LayerLimit, Limit, Project, Setting)
from supervisor.store.submit import ensure_project

MAX_COUNT = 1 << 30


def _job(conn: Connection, job_id: int) -> Any:
    row = conn.execute(select(Job.id, Job.state).where(Job.id == job_id)).first()
    if row is None:
        raise ControlError(f"no job with id {job_id}", "job_id")
    return row


def set_job(conn: Connection, job_id: int, values: dict[str, Any]) -> None:
    _job(conn, job_id)
    if "project" in values:
        values = dict(values)
        values["project_id"] = ensure_project(conn, values.pop("project"))
    current = conn.execute(select(Job.min_slots, Job.max_slots).where(Job.id == job_id)).first()
    lo = values.get("min_slots", current.min_slots)
    hi = values.get("max_slots", current.max_slots)
    if hi is not None and hi < lo:
        raise ControlError(f"max_slots {hi} is below min_slots {lo}", "max_slots")
    conn.execute(update(Job).where(Job.id == job_id).values(**values))


def set_layer(conn: Connection, job_id: int, layer: str, values: dict[str, Any]) -> int:
    """Apply validated layer changes; return the layer id."""
    _job(conn, job_id)
    lid = conn.execute(select(Layer.id).where(Layer.job_id == job_id, Layer.name == layer)).scalar()
    if lid is None:
        raise ControlError(f"job {job_id} has no layer {layer!r}", "layer")
    if "limits" in values:
        names = values["limits"]
        # Rows in the farm's one order: limits, then the layer (the link rows below would
        # take both, the layer first).  Shared: a pass or another edit may read them too.
        found = dict(conn.execute(select(Limit.name, Limit.id).where(Limit.name.in_(names))
                                  .order_by(Limit.id).with_for_update(key_share=True)).all())
        missing = [n for n in names if n not in found]
        if missing:
            raise ControlError(f"no limit named {missing[0]!r}", "limits")
        conn.execute(select(Layer.id).where(Layer.id == lid).with_for_update())
        conn.execute(delete(LayerLimit).where(LayerLimit.layer_id == lid))
        if names:
            conn.execute(insert(LayerLimit), [{"layer_id": lid, "limit_id": found[n]}
                                              for n in names])
    conn.execute(update(Layer).where(Layer.id == lid).values(**values))
    return lid


def set_project(conn: Connection, name: str, guaranteed: int | None, max_slots: int | None,
                unlimited: bool) -> None:
    if guaranteed is not None and not 0 <= guaranteed <= MAX_COUNT:
        raise ControlError(f"guaranteed slots {guaranteed} must be 0 or more", "guaranteed")
    if max_slots is not None and not 0 <= max_slots <= MAX_COUNT:
        raise ControlError(f"maximum slots {max_slots} must be 0 or more", "max_slots")
    pid = ensure_project(conn, name)
    row = conn.execute(select(Project.guaranteed, Project.max_slots)
                       .where(Project.id == pid)).first()
    g = row.guaranteed if guaranteed is None else guaranteed
    m = None if unlimited else (row.max_slots if max_slots is None else max_slots)
    if m is not None and g > m:
        raise ControlError(f"guaranteed {g} is above the maximum {m}", "guaranteed")
    conn.execute(update(Project).where(Project.id == pid).values(guaranteed=g, max_slots=m))


def project_rows(conn: Connection) -> list[dict[str, Any]]:
    used = dict(conn.execute(select(Job.project_id, func.sum(Layer.slots_running))
                             .join(Layer, Layer.job_id == Job.id)
                             .where(Layer.slots_running > 0).group_by(Job.project_id)).all())
    waiting = dict(conn.execute(select(Job.project_id, func.sum(Layer.waiting))
                                .join(Layer, Layer.job_id == Job.id)
                                .where(Layer.waiting > 0).group_by(Job.project_id)).all())
    return [{"id": r.id, "name": r.name, "guaranteed": r.guaranteed, "max_slots": r.max_slots,
             "slots_used": int(used.get(r.id, 0)), "waiting": int(waiting.get(r.id, 0))}
            for r in conn.execute(select(Project.id, Project.name, Project.guaranteed,
                                         Project.max_slots).order_by(Project.name))]


def set_limit(conn: Connection, name: str, count: int, per_host: bool | None) -> None:
    if not name or len(name) > 64 or not all(c.isascii() and (c.isalnum() or c in "_.-")
                                             for c in name):
        raise ControlError(f"{name!r} is not a valid limit name", "name")
    if isinstance(count, bool) or not 0 <= count <= MAX_COUNT:
        raise ControlError(f"a limit is 0 or more, not {count}", "max")
    row = conn.execute(select(Limit.id).where(Limit.name == name)).first()
    if row is None:
        conn.execute(insert(Limit).values(name=name, max=count, per_host=bool(per_host)))
    else:
        values: dict[str, Any] = {"max": count}
        if per_host is not None:
            values["per_host"] = per_host
        conn.execute(update(Limit).where(Limit.id == row.id).values(**values))


def delete_limit(conn: Connection, name: str) -> None:
    row = conn.execute(select(Limit.id).where(Limit.name == name)).first()
    if row is None:
        raise ControlError(f"no limit named {name!r}", "name")
    users = conn.execute(select(func.count()).select_from(LayerLimit)
                         .join(Layer, Layer.id == LayerLimit.layer_id)
                         .where(LayerLimit.limit_id == row.id,
                                (Layer.waiting + Layer.running + Layer.depend) > 0)).scalar()
    if users:
        raise ControlError(f"limit {name!r} is still needed by {users} unfinished layer(s)",
                           "name")
    conn.execute(delete(LayerLimit).where(LayerLimit.limit_id == row.id))
    conn.execute(delete(Limit).where(Limit.id == row.id))


def limit_rows(conn: Connection) -> list[dict[str, Any]]:
    names = set(conn.execute(select(Limit.name)).scalars())
    usage = counts.limit_usage(conn, names)
    return [{"name": n, "max": u["max"], "per_host": u["per_host"], "in_use": u["used"]}
            for n, u in sorted(usage.items())]


def dependency_rows(conn: Connection, job_id: int) -> list[dict[str, Any]]:
    _job(conn, job_id)
    names = dict(conn.execute(select(Layer.id, Layer.name).where(Layer.job_id == job_id)).all())
    out = []
    for d in conn.execute(select(Dependency.id, Dependency.kind, Dependency.layer_id,
                                 Dependency.target_job_id, Dependency.target_layer_id,
                                 Dependency.satisfied)
                          .where(Dependency.job_id == job_id).order_by(Dependency.id)):
        target_layer = None
        if d.target_layer_id is not None:
            target_layer = conn.execute(select(Layer.name, Layer.waiting, Layer.running,
                                               Layer.depend, Layer.dead, Layer.succeeded,
                                               Layer.eaten, Layer.frames_total)
                                        .where(Layer.id == d.target_layer_id)).first()
        out.append({"id": d.id, "kind": d.kind, "layer": names.get(d.layer_id),
                    "target_job_id": d.target_job_id,
                    "target_layer": target_layer.name if target_layer else None,
                    "satisfied": bool(d.satisfied) if d.kind != "frame" else frame_dependency_done(
                        conn, d.layer_id, d.target_layer_id),
                    "target_dead": int(target_layer.dead) if target_layer else 0})
    return out


def frame_dependency_done(conn: Connection, layer_id: int, target_layer_id: int) -> bool:
    """Whether every frame of `layer_id` has nothing left to wait for in `target_layer_id`."""
    left = conn.execute(select(func.count()).select_from(FrameDep)
                        .join(Frame, Frame.id == FrameDep.target_frame_id)
                        .where(Frame.layer_id == target_layer_id,
                               Frame.state.not_in([s.value for s in COMPLETE_STATES]),
                               FrameDep.frame_id.in_(select(Frame.id)
                                                     .where(Frame.layer_id == layer_id))))
    return not left.scalar()


def dependency_control(conn: Connection, action: str, job_id: int, dep_id: int, now: float,
                       touched: work.Touched) -> None:
    """satisfy: the dependent runs as if its target were done; drop: the edge is removed too."""
    if action not in ("satisfy", "drop"):
        raise ControlError(f"unknown dependency action {action!r} (satisfy, drop)", "action")
    dep = conn.execute(select(Dependency.id, Dependency.kind, Dependency.layer_id,
                              Dependency.target_layer_id)
                       .where(Dependency.id == dep_id, Dependency.job_id == job_id)).first()
    if dep is None:
        raise ControlError(f"job {job_id} has no dependency {dep_id} "
                           f"(see cuefarm deps {job_id})", "dependency_id")
    if dep.kind == "frame":
        mine = select(Frame.id).where(Frame.layer_id == dep.layer_id)
        theirs = select(Frame.id).where(Frame.layer_id == dep.target_layer_id)
        conn.execute(delete(FrameDep).where(FrameDep.frame_id.in_(mine),
                                            FrameDep.target_frame_id.in_(theirs)))
        # What is left to wait for: edges to targets not yet done (an edge to a frame that
        # already succeeded was counted off when it did).
        target = aliased(Frame)
        remaining = (select(func.count()).select_from(FrameDep)
                     .join(target, target.id == FrameDep.target_frame_id)
                     .where(FrameDep.frame_id == Frame.id,
                            target.state.not_in([s.value for s in COMPLETE_STATES]))
                     .scalar_subquery())
        conn.execute(update(Frame).where(Frame.layer_id == dep.layer_id)
                     .values(deps_left=remaining))
        conn.execute(update(Dependency).where(Dependency.id == dep_id).values(satisfied=True))
        work.release_frames(conn, Frame.layer_id == dep.layer_id, now, touched)
    else:
        work.satisfy(conn, Dependency.id == dep_id, now, touched)
    if action == "drop":
        conn.execute(delete(Dependency).where(Dependency.id == dep_id))
    touched.jobs.add(job_id)
    touched.layers.add(dep.layer_id)


def bad_hosts(conn: Connection, job_id: int, now: float) -> list[dict[str, Any]]:
    """Hosts that failed frames of a job: failures counted, and until when each is kept off the
    job (`banned_until` 0 and `banned` false for a host below the threshold or whose ban
    ran out)."""
    _job(conn, job_id)
    return [{"host": r.name, "failures": int(r.failures),
             "banned_until": r.banned_until if r.banned_until > now else 0.0,
             "banned": r.banned_until > now}
            for r in conn.execute(select(Host.name, JobHost.failures, JobHost.banned_until)
                                  .join(Host, Host.id == JobHost.host_id)
                                  .where(JobHost.job_id == job_id)
                                  .where((JobHost.failures > 0) | (JobHost.banned_until > now))
                                  .order_by(Host.name))]


def clear_bad_hosts(conn: Connection, job_id: int, host: str | None,
                    touched: work.Touched) -> int:
    """Forget a job's failures on one host (`host`), or on every host (None): the host may run
    the job again at once.  Return how many hosts were cleared."""
    _job(conn, job_id)
    where = JobHost.job_id == job_id
    if host is not None:
        host_id = conn.execute(select(Host.id).where(Host.name == host)).scalar()
        if host_id is None:
            raise ControlError(f"no host named {host!r}", "host")
        where = where & (JobHost.host_id == host_id)
    count = conn.execute(delete(JobHost).where(where)).rowcount
    if host is not None and not count:
        raise ControlError(f"host {host!r} is not on job {job_id}'s bad-host list", "host")
    touched.jobs.add(job_id)
    return count


# --- project members ------------------------------------------------------------------------------

MEMBERS_KEY = "project_members"     # Setting row: {project name: [user, ...]}
MAX_NAME = 128


def members(conn: Connection) -> dict[str, list[str]]:
    """Restricted projects and their members (projects not listed are open to everyone)."""
    value = conn.execute(select(Setting.value).where(Setting.key == MEMBERS_KEY)).scalar()
    return {k: list(v) for k, v in (value or {}).items() if v}


def set_members(conn: Connection, project: str, users: list[str]) -> list[str]:
    """Restrict `project` to `users` (an empty list opens it to everyone); return the members."""
    if not project or len(project) > MAX_NAME:
        raise ControlError(f"{project!r} is not a project name", "name")
    clean = sorted(set(users))
    for u in clean:
        if not u or len(u) > MAX_NAME or any(c.isspace() or c == "," for c in u):
            raise ControlError(f"{u!r} is not a user name", "members")
    ensure_project(conn, project)
    q = select(Setting.value).where(Setting.key == MEMBERS_KEY)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()     # several supervisors: no lost update of the one row
    row = conn.execute(q).first()
    current = dict(row.value or {}) if row is not None else {}
    if clean:
        current[project] = clean
    else:
        current.pop(project, None)
    if row is None:
        conn.execute(insert(Setting).values(key=MEMBERS_KEY, value=current))
    else:
        conn.execute(update(Setting).where(Setting.key == MEMBERS_KEY).values(value=current))
    return clean
