"""Client API requests: submit, query, control, logs.  One handler per request type."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

import fileseq
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

import cuefarm
from cuefarm import protocol as p
from cuefarm.spec import (SpecError, validate_job_changes, validate_layer_changes,
                          validate_submission)
from cuefarm import pathmap
from supervisor import access, schedules, why
from supervisor.store import admin, control, hostadmin
from supervisor.store.errors import ControlError
from supervisor.store import jobs as rows
from supervisor.store import submit as submit_store
from supervisor.store import work
from supervisor.store.models import Attempt, Frame, Host, Layer

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger(__name__)
LOG_TIMEOUT = 10.0


class RequestError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def handle(sv: "Supervisor", frames: list[bytes]) -> None:
    if len(frames) < 2:
        sv.errors["malformed"] += 1
        return
    route, data = frames[:-1], frames[-1]
    try:
        env, body = p.decode(data, p.MAX_CLIENT_MESSAGE, p.CLIENT_REQUESTS)
    except p.ProtocolError as exc:
        sv.errors[exc.code] += 1
        log.info("bad client request: %s", exc.message)
        sv.reply(route, exc.request_id, p.Error(exc.code, exc.message))
        return
    if env.type in READS and sv.reader is not None:
        # Reading 5,000 hosts or a page of 50,000 frames takes a while: on the reader thread,
        # so heartbeats and freed slots are not kept waiting.  The loop sends the reply.
        sv.reader_seq += 1
        sv.reader.submit(sv.reader_seq, lambda: (route, env.id, serve(sv, env, body, route)))
        return
    reply = serve(sv, env, body, route)
    if reply is not None:
        sv.reply(route, env.id, reply)


def serve(sv: "Supervisor", env: p.Envelope, body: p.Body, route: list[bytes]) -> p.Body | None:
    """The reply to one decoded request (an Error for a refusal or a failure)."""
    handler = HANDLERS[env.type]
    user = env.user or "unknown"

    def answer():
        # Who may do what (supervisor.access): a refusal is the reply, the handler never runs.
        reply = access.check(sv, env.type, body, user)
        if reply is None:
            reply = access.filter_reply(sv, env.type, body, user,
                                        handler(sv, body, user, route, env.id))
        return reply
    try:
        try:
            reply = answer()
        except DBAPIError as exc:
            # A read on a connection the server ended (a restart, a failover) is asked again,
            # once, on the fresh connection the pool now hands out.
            if not (exc.connection_invalidated and env.type in READS):
                raise
            log.warning("database connection lost serving %s; asking again", env.type)
            reply = answer()
    except RequestError as exc:
        sv.errors[exc.code] += 1
        reply = p.Error(exc.code, exc.message, exc.field)
    except SQLAlchemyError as exc:
        sv.errors["database"] += 1
        log.exception("database error serving %s", env.type)
        reply = p.Error("database", f"database error: {type(exc).__name__}")
    except Exception:   # a bug: the client still gets an answer, the log gets the trace
        sv.errors["internal"] += 1
        log.exception("internal error serving %s", env.type)
        reply = p.Error("internal", f"internal error serving {env.type}; see the supervisor log")
    return reply


def _ping(sv, body, user, route, rid):
    return p.Pong(cuefarm.__version__, sv.id, sv.publisher.seq, sv.cfg.port + 2,
                  sv.cfg.max_frames_per_job)


def _submit(sv, body: p.Submit, user, route, rid):
    try:
        specs = validate_submission(body.jobs, sv.cfg.max_frames_per_job)
    except SpecError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    now = sv.clock()
    try:
        with sv.engine.begin() as conn:
            ids = submit_store.submit(conn, specs, user, now,
                                      access.hidden_projects(sv, conn, user))
    except submit_store.SubmitError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    log.info("%s submitted jobs %s", user, ids)
    sv.note(work.Touched(jobs=set(ids)))
    sv.dispatch_needed = True
    return p.JobIds(ids)


def _read(sv, fn: Callable):
    with sv.engine.connect() as conn:
        try:
            return fn(conn)
        finally:
            conn.rollback()


def _list_jobs(sv, body: p.ListJobs, user, route, rid):
    return p.Rows(_read(sv, lambda c: rows.job_rows(c, None, body.project, body.user,
                                                    body.include_finished)))


def _get_job(sv, body: p.JobRef, user, route, rid):
    found = _read(sv, lambda c: rows.job_rows(c, [body.job_id]))
    if not found:
        raise RequestError("not_found", f"no job with id {body.job_id}", "job_id")
    return p.Row(found[0])


def _list_layers(sv, body: p.JobRef, user, route, rid):
    _get_job(sv, body, user, route, rid)
    return p.Rows(_read(sv, lambda c: rows.layer_rows(c, body.job_id)))


def _check_page(body: p.ListFrames) -> None:
    if body.offset < 0:
        raise RequestError("invalid", f"offset must be 0 or more, not {body.offset}", "offset")
    if body.limit is not None and not 1 <= body.limit <= p.MAX_FRAMES_PAGE:
        raise RequestError("invalid", f"limit must be from 1 to {p.MAX_FRAMES_PAGE} "
                                      f"(or left out for all frames), not {body.limit}", "limit")


def _list_frames(sv, body: p.ListFrames, user, route, rid):
    _check_page(body)
    if body.host is not None:
        return p.Rows(_host_frames(sv, body))
    if body.job_id is None:
        raise RequestError("invalid", "list_frames needs a job_id, or a host for the frames "
                                      "running there", "job_id")
    _get_job(sv, p.JobRef(body.job_id), user, route, rid)
    # Unpaged asks are answered only while the answer fits in one page: a reply must never
    # outgrow the client's MAXMSGSIZE (ZeroMQ would drop the connection without a word).
    limit = p.MAX_FRAMES_PAGE + 1 if body.limit is None else body.limit
    found = _read(sv, lambda c: rows.frame_rows(c, body.job_id, None, body.layer,
                                                body.states, body.offset, limit))
    if body.limit is None and len(found) > p.MAX_FRAMES_PAGE:
        raise RequestError("too_large", f"job {body.job_id} has more than {p.MAX_FRAMES_PAGE} "
                                        "such frames: ask in pages (offset, limit)", "limit")
    return p.Rows(found)


def _host_frames(sv, body: p.ListFrames) -> list[dict]:
    """The frames running on one host: job, layer and states do not apply."""
    for name in ("job_id", "layer", "states"):
        if getattr(body, name) is not None:
            raise RequestError("invalid", f"{name} cannot be combined with host (a host's "
                                          "frames are those running there, from every job)", name)

    def read(conn):
        host_id = conn.execute(select(Host.id).where(Host.name == body.host)).scalar()
        if host_id is None:
            raise RequestError("not_found", f"no host named {body.host!r}", "host")
        return rows.running_frame_rows(conn, host_id, body.offset, body.limit)
    return _read(sv, read)


def _list_hosts(sv, body, user, route, rid):
    return p.Rows(_read(sv, rows.host_rows))


def _apply(sv, fn: Callable[[object, control.Outcome], None]) -> control.Outcome:
    """Run one control command in a transaction, then kill what it asked to kill."""
    out = control.Outcome()
    now = sv.clock()
    try:
        with sv.engine.begin() as conn:
            fn(conn, out)
            work.settle(conn, out.deltas, out.touched, now)
    except ControlError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    sv.send_kills(out.kills)
    sv.note(out.touched)
    sv.dispatch_needed = True
    return out


def _job_control(sv, body: p.JobControl, user, route, rid):
    now = sv.clock()
    out = _apply(sv, lambda c, o: control.job_control(c, body.action, body.job_ids, body.value,
                                                      now, o))
    log.info("%s: %s jobs %s (%d)", user, body.action, body.job_ids, out.count)
    return p.Done(out.count)


def _frame_control(sv, body: p.FrameControl, user, route, rid):
    now = sv.clock()
    out = _apply(sv, lambda c, o: control.frame_control(c, body.action, body.job_id,
                                                        body.frame_ids, now, o))
    return p.Done(out.count)


def _host_control(sv, body: p.HostControl, user, route, rid):
    if body.action not in ("lock", "unlock"):
        raise RequestError("invalid", f"unknown host action {body.action!r} (lock, unlock)",
                           "action")
    lock = body.action == "lock"
    rows: list = []

    def change(conn, out):
        rows.extend(control.lock_hosts(conn, body.hosts, lock, body.purge, body.slots,
                                       lambda ids: schedules.override_until(sv, conn, ids), out))
    out = _apply(sv, change)
    for r in rows:
        w = sv.registry.by_id.get(r.id)
        if w is not None:
            w.locked, w.lock_slots = lock, (body.slots if lock else None)
    log.info("%s: %s %s%s", user, body.action, body.hosts, " (purge)" if body.purge else "")
    return p.Done(out.count)


def _refresh_worker(sv, host_id: int) -> None:
    """Re-read a host's admin settings into the live view after a change."""
    with sv.engine.connect() as conn:
        row = conn.execute(select(Host.slots_override, Host.tags, Host.tags_added,
                                  Host.tags_removed, Host.drain).where(Host.id == host_id)).one()
        conn.rollback()
    w = sv.registry.by_id.get(host_id)
    if w is not None:
        w.slots = w.offered if row.slots_override is None else row.slots_override
        w.tags = frozenset(hostadmin.effective_tags(row))
        w.draining = row.drain is not None
        sv.registry.version += 1


def _host_slots(sv, body: p.HostSlots, user, route, rid):
    ids: list[int] = []
    _apply(sv, lambda c, o: (ids.append(hostadmin.set_slots(c, body.host, body.slots)),
                             o.touched.hosts.update(ids)))
    _refresh_worker(sv, ids[0])
    log.info("%s: host %s slots %s", user, body.host, body.slots)
    return p.Done(1)


def _host_tags(sv, body: p.HostTags, user, route, rid):
    ids: list[int] = []
    _apply(sv, lambda c, o: (ids.append(hostadmin.set_tags(c, body.host, body.add, body.remove)),
                             o.touched.hosts.update(ids)))
    _refresh_worker(sv, ids[0])
    return p.Done(1)


def _host_drain(sv, body: p.HostDrain, user, route, rid):
    rows: list = []
    _apply(sv, lambda c, o: (rows.extend(hostadmin.set_drain(c, body.hosts, body.then,
                                                             body.cancel)),
                             o.touched.hosts.update(r.id for r in rows)))
    for r in rows:
        _refresh_worker(sv, r.id)
        w = sv.registry.by_id.get(r.id)
        if w is not None and w.identity is not None:
            sv.send_worker(w.identity, p.Drain(then=body.then, cancel=body.cancel))
    log.info("%s: drain %s then %s%s", user, body.hosts, body.then,
             " (cancelled)" if body.cancel else "")
    return p.Done(len(rows))


def _admission_control(sv, body: p.AdmissionControl, user, route, rid):
    now = sv.clock()
    ban = body.action == "ban"

    def change(conn, out):
        ids = hostadmin.admission_control(conn, body.action, body.names, body.reason, now)
        if ban and ids:
            # A ban takes effect now: its frames are requeued (no retry spent).
            control.kill_running_on_hosts(conn, ids, out)
        out.touched.hosts.update(ids)
    _apply(sv, change)          # sends the purge's kills while the worker is still connected
    for name in body.names:
        w = sv.registry.by_name.get(name)
        if w is not None:
            w.banned = ban
            w.locked, w.lock_slots = ban, (0 if ban else None)
            sv.registry.version += 1
            if ban and w.identity is not None:
                # rqd stops; each retry is refused while banned.  The first retry comes soon
                # because it brings the completions of the purged frames (rqd keeps them until
                # acknowledged), which puts those frames back in the queue; later retries wait
                # the usual admission_retry.
                sv.send_worker(w.identity, p.Refused(
                    f"{name} is banned from this farm"
                    + (f" ({body.reason})" if body.reason else ""),
                    retry_after=min(sv.cfg.admission_retry, 2.0) if w.running
                    else sv.cfg.admission_retry))
                sv.registry.disconnect(w, sv.mono())
                w.clear()
    log.info("%s: %s %s", user, body.action, body.names)
    return p.Done(len(body.names))


def _list_admission(sv, body, user, route, rid):
    return p.Rows(_read(sv, hostadmin.admission_rows))


def _set_admission(sv, body: p.SetAdmission, user, route, rid):
    policy: list = []
    _apply(sv, lambda c, o: policy.append(hostadmin.set_admission(
        c, sv.default_admission(), body.mode, body.networks, body.patterns)))
    sv.admission = policy[0]
    log.info("%s: admission %s", user, sv.admission)
    return p.Row(sv.admission)


def _set_schedule(sv, body: p.SetSchedule, user, route, rid):
    ids: list[int] = []
    _apply(sv, lambda c, o: ids.append(hostadmin.add_schedule(c, body)))
    schedules.apply(sv)
    return p.Done(ids[0])


def _list_schedules(sv, body, user, route, rid):
    return p.Rows(_read(sv, hostadmin.schedule_rows))


def _delete_schedule(sv, body: p.DeleteSchedule, user, route, rid):
    _apply(sv, lambda c, o: hostadmin.delete_schedule(c, body.id))
    schedules.apply(sv)
    return p.Done(1)


def _add_path_map(sv, body: p.AddPathMap, user, route, rid):
    ids: list[int] = []
    _apply(sv, lambda c, o: ids.append(hostadmin.add_path_map(c, body)))
    sv.path_map_rows = _read(sv, hostadmin.path_map_rows)
    return p.Done(ids[0])


def _list_path_maps(sv, body, user, route, rid):
    return p.Rows(_read(sv, hostadmin.path_map_rows))


def _delete_path_map(sv, body: p.DeletePathMap, user, route, rid):
    _apply(sv, lambda c, o: hostadmin.delete_path_map(c, body.id))
    sv.path_map_rows = _read(sv, hostadmin.path_map_rows)
    return p.Done(1)


def _check_path(sv, body: p.CheckPath, user, route, rid):
    row = _read(sv, lambda c: c.execute(select(Host.id, Host.os, Host.tags, Host.tags_added,
                                               Host.tags_removed)
                                        .where(Host.name == body.host)).first())
    if row is None:
        raise RequestError("invalid", f"no host named {body.host!r}", "host")
    w = sv.registry.by_id.get(row.id)
    central = hostadmin.central_rules(sv.path_map_rows, row.os,
                                      set(hostadmin.effective_tags(row)))
    own = list(w.own_rules) if w is not None else []
    rules = pathmap.merge_rules(central, own)
    hit = pathmap.match_rule(rules, body.path)
    result = pathmap.translate_path(rules, body.path, row.os)
    rule = None
    if hit is not None:
        index, r = hit
        rule = {"source": r.source, "target": r.target,
                "origin": "worker" if index < len(own) else "supervisor"}
    return p.Row({"host": body.host, "os": row.os, "path": body.path, "result": result,
                  "rule": rule, "worker_rules_known": w is not None})


def _find_attempt(conn, body: p.GetLog):
    layer_id = conn.execute(select(Layer.id).where(Layer.job_id == body.job_id,
                                                   Layer.name == body.layer)).scalar()
    if layer_id is None:
        raise RequestError("not_found", f"job {body.job_id} has no layer {body.layer!r}", "layer")
    lo, hi = Frame.number, Frame.frame_end
    candidates = conn.execute(
        select(Frame.id, Frame.attempt, Frame.label)
        .where(Frame.layer_id == layer_id,
               or_(and_(lo <= body.frame, hi >= body.frame), and_(lo >= body.frame,
                                                                   hi <= body.frame)))).all()
    frame = next((f for f in candidates if body.frame in fileseq.FrameSet(f.label)), None)
    if frame is None:
        raise RequestError("not_found", f"layer {body.layer!r} has no frame {body.frame}", "frame")
    number = body.attempt if body.attempt is not None else frame.attempt
    if number < 1:
        raise RequestError("not_found", f"frame {body.frame} has not run yet", "attempt")
    att = conn.execute(select(Attempt.host_id, Attempt.host_name)
                       .where(Attempt.frame_id == frame.id, Attempt.number == number)).first()
    if att is None:
        raise RequestError("not_found", f"frame {body.frame} has no attempt {number} "
                                        f"(latest is {frame.attempt})", "attempt")
    return f"{frame.id}.{number}", att.host_id, att.host_name


def _get_log(sv, body: p.GetLog, user, route, rid):
    aid, host_id, host_name = _read(sv, lambda c: _find_attempt(c, body))
    w = sv.registry.by_id.get(host_id)
    if w is None or w.identity is None:
        raise RequestError("unavailable", f"host {host_name} is not connected; the log of "
                                          f"attempt {aid} is on that host")
    sv.log_tokens += 1
    token = sv.log_tokens
    limit = max(1, min(body.limit, p.MAX_WORKER_MESSAGE // 2))
    if not sv.send_worker(w.identity, p.LogRequest(token, aid, body.offset, limit)):
        raise RequestError("unavailable", f"host {host_name} cannot be reached")
    sv.pending_logs[token] = (route, rid, sv.mono() + LOG_TIMEOUT, host_name)
    return None   # answered when the worker replies


def answer_log(sv: "Supervisor", reply: p.LogReply) -> None:
    pending = sv.pending_logs.pop(reply.token, None)
    if pending is None:
        return
    route, rid, _, host = pending
    if reply.error:
        sv.reply(route, rid, p.Error("unavailable", f"{host}: {reply.error}"))
        return
    sv.reply(route, rid, p.LogChunk(reply.attempt_id, host, reply.offset, reply.size, reply.data))


def expire_log_requests(sv: "Supervisor", mono: float) -> None:
    for token, (route, rid, deadline, host) in list(sv.pending_logs.items()):
        if mono > deadline:
            del sv.pending_logs[token]
            sv.reply(route, rid, p.Error("unavailable", f"host {host} did not send the log"))


def _set_job(sv, body: p.SetJob, user, route, rid):
    try:
        values = validate_job_changes(body.values)
    except SpecError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    _apply(sv, lambda c, o: (admin.set_job(c, body.job_id, values), o.touched.jobs.add(body.job_id)))
    log.info("%s: job %d set %s", user, body.job_id, values)
    return p.Done(1)


def _set_layer(sv, body: p.SetLayer, user, route, rid):
    try:
        values = validate_layer_changes(body.values)
    except SpecError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    ids: list[int] = []

    def change(conn, out):
        ids.append(admin.set_layer(conn, body.job_id, body.layer, values))
        out.touched.layers.add(ids[0])
        out.touched.jobs.add(body.job_id)
    _apply(sv, change)
    sv.layer_cache.pop(ids[0], None)
    sv.matcher.forget_layer(ids[0])
    log.info("%s: job %d layer %s set %s", user, body.job_id, body.layer, values)
    return p.Done(1)


def _set_project(sv, body: p.SetProject, user, route, rid):
    _apply(sv, lambda c, o: admin.set_project(c, body.name, body.guaranteed, body.max_slots,
                                              body.unlimited))
    log.info("%s: project %s guaranteed=%s max=%s", user, body.name, body.guaranteed,
             "none" if body.unlimited else body.max_slots)
    return p.Done(1)


def _list_projects(sv, body, user, route, rid):
    return p.Rows(_read(sv, admin.project_rows))


def _set_limit(sv, body: p.SetLimit, user, route, rid):
    _apply(sv, lambda c, o: admin.set_limit(c, body.name, body.max, body.per_host))
    log.info("%s: limit %s = %d", user, body.name, body.max)
    return p.Done(1)


def _delete_limit(sv, body: p.DeleteLimit, user, route, rid):
    _apply(sv, lambda c, o: admin.delete_limit(c, body.name))
    return p.Done(1)


def _list_limits(sv, body, user, route, rid):
    return p.Rows(_read(sv, admin.limit_rows))


def _list_dependencies(sv, body: p.JobRef, user, route, rid):
    return p.Rows(_read(sv, lambda c: _control_errors(admin.dependency_rows, c, body.job_id)))


def _dependency_control(sv, body: p.DependencyControl, user, route, rid):
    now = sv.clock()
    _apply(sv, lambda c, o: admin.dependency_control(c, body.action, body.job_id,
                                                     body.dependency_id, now, o.touched))
    log.info("%s: %s dependency %d of job %d", user, body.action, body.dependency_id,
             body.job_id)
    return p.Done(1)


def _why(sv, body: p.Why, user, route, rid):
    return p.Row(_read(sv, lambda c: _control_errors(why.explain, sv, c, body.job_id,
                                                     body.layer, body.frame)))


def _next_for_host(sv, body: p.NextForHost, user, route, rid):
    return p.Rows(_read(sv, lambda c: _control_errors(why.next_for_host, sv, c, body.host,
                                                      body.limit)))


def _bad_hosts(sv, body: p.JobRef, user, route, rid):
    now = sv.clock()
    return p.Rows(_read(sv, lambda c: _control_errors(admin.bad_hosts, c, body.job_id, now)))


def _clear_bad_hosts(sv, body: p.ClearBadHosts, user, route, rid):
    counts: list[int] = []
    _apply(sv, lambda c, o: counts.append(admin.clear_bad_hosts(c, body.job_id, body.host,
                                                                o.touched)))
    sv.bans.invalidate()
    log.info("%s: cleared bad host %s of job %d", user, body.host or "(all)", body.job_id)
    return p.Done(counts[0])


def _control_errors(fn, *args):
    try:
        return fn(*args)
    except ControlError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None


HANDLERS = {"ping": _ping, "submit": _submit, "list_jobs": _list_jobs, "get_job": _get_job,
            "list_layers": _list_layers, "list_frames": _list_frames, "list_hosts": _list_hosts,
            "job_control": _job_control, "frame_control": _frame_control,
            "host_control": _host_control, "get_log": _get_log, "set_job": _set_job,
            "set_layer": _set_layer, "set_project": _set_project, "list_projects": _list_projects,
            "set_limit": _set_limit, "delete_limit": _delete_limit, "list_limits": _list_limits,
            "list_dependencies": _list_dependencies, "dependency_control": _dependency_control,
            "why": _why, "next_for_host": _next_for_host,
            "bad_hosts": _bad_hosts, "clear_bad_hosts": _clear_bad_hosts,
            "host_slots": _host_slots,
            "host_tags": _host_tags, "host_drain": _host_drain,
            "admission_control": _admission_control, "list_admission": _list_admission,
            "set_admission": _set_admission, "set_schedule": _set_schedule,
            "list_schedules": _list_schedules, "delete_schedule": _delete_schedule,
            "add_path_map": _add_path_map, "list_path_maps": _list_path_maps,
            "delete_path_map": _delete_path_map, "check_path": _check_path}

from supervisor import billing_api  # noqa: E402  (licences, usage, metrics)
HANDLERS.update(billing_api.HANDLERS)
HANDLERS.update(access.HANDLERS)   # whoami, project members
# Requests that only read the database (not the loop's live state): served on the reader
# thread.  `why` and `next_for_host` read the live registry and stay on the loop.
READS = frozenset({"list_jobs", "get_job", "list_layers", "list_frames", "list_hosts",
                   "list_projects", "list_limits", "list_dependencies", "bad_hosts",
                   "list_schedules", "list_path_maps", "list_admission", "usage",
                   "metric_history", "licence_reports"})
