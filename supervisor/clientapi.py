"""The client API: decoding a request, serving it, and the handlers of submit, queries,
control, hosts, admission, schedules, path maps and logs.

Each request type is declared once next to its handler (supervisor.requests).  Importing this
module imports the other modules holding handlers (access, billing_api, why), so every type is
registered once it is loaded.
"""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sqlalchemy.exc import IntegrityError

import cuefarm
from cuefarm import loaderenv
from cuefarm import protocol as p
from cuefarm.jobkeys import NAME_WORDS
from cuefarm.spec import (NAME_RE, SpecError, validate_job_changes, validate_layer_changes,
                          validate_submission)
from cuefarm import pathmap
from supervisor import (access, archive_api, auditing, bigsubmit, billing_api, comments,
                        exports, keys_api, notify_api, presence, schedules, stats, why,
                        wrangling)
from supervisor.context import Context
from supervisor.live import default_admission
from supervisor.logrelay import RELAYED_MAX
from supervisor.requests import DECLARED, Request, RequestError, control_errors, request
from supervisor.requests import apply_control as _apply
from supervisor.roles import ADMIN, ARTIST, WRANGLER
from supervisor.store import admin, bus, control, hostadmin
from supervisor.store import hosts as host_store
from supervisor.store import jobs as rows
from supervisor.store import submit as submit_store
from supervisor.store import work

log = logging.getLogger(__name__)
_NUL_REFUSED = "cannot contain NUL (0x00)"   # psycopg2's words for a NUL in a text
# The other modules declaring requests, imported here so that loading the client API
# registers every request type.
DECLARING = (access, auditing, billing_api, comments, presence, stats, why, wrangling, exports,
             notify_api, archive_api, keys_api)


def handle(cx: Context, frames: list[bytes],
           off_loop: Callable[[Callable[[], tuple]], None]) -> None:
    """Serve one client message (its route frames, then the message).  The reply goes to
    cx.out; a request that only reads is handed to `off_loop`, whose callable returns
    (route, request id, reply) for the loop to send."""
    if len(frames) < 2:
        cx.live.errors["malformed"] += 1
        return
    route, data = frames[:-1], frames[-1]
    try:
        env, body = p.decode(data, p.MAX_CLIENT_REQUEST, p.CLIENT_REQUESTS)
    except p.ProtocolError as exc:
        cx.live.errors[exc.code] += 1
        log.info("bad client request: %s", exc.message)
        cx.out.reply(route, exc.request_id, p.Error(exc.code, exc.message))
        return
    declared = DECLARED.get(env.type)
    if declared is not None and (declared.read or declared.off_loop):
        # Reading 5,000 hosts or a page of 50,000 frames takes a while: on the reader thread,
        # so heartbeats and freed slots are not kept waiting.  The loop sends the reply.
        off_loop(lambda: (route, env.id, serve(cx, env, body, route, len(data))))
        return
    reply = serve(cx, env, body, route, len(data))
    if reply is not None:
        cx.out.reply(route, env.id, reply)


def sender(cx: Context, env: p.Envelope, route: list[bytes]) -> str:
    """Who sent a request: with keys, the user its connection's key is (the `user` the
    message claims is ignored); without, the user it claims."""
    if cx.gate is not None:
        return cx.live.client_users.get(route[0], "") if route else ""
    return env.user or "unknown"


def serve(cx: Context, env: p.Envelope, body: p.Body, route: list[bytes],
          size: int = 0) -> p.Body | None:
    """The reply to one decoded request (`size` bytes; an Error for a refusal or a failure);
    None when the reply comes later."""
    declared = DECLARED.get(env.type)
    if declared is None:
        # The decoder knows the type but nothing declares it: answered as the decoder answers
        # a type it does not know (a test keeps the two lists the same).
        cx.live.errors["unknown_type"] += 1
        return p.Error("unknown_type", f"unknown message type {env.type!r}")
    req = Request(body, sender(cx, env, route), route, env.id, size)

    def answer():
        # Who may do what (supervisor.access): a refusal is the reply, the handler never runs.
        reply = access.check(cx, env.type, body, req.user)
        if reply is None and not declared.read:
            reply = archive_api.refuse_restored(cx, declared.rule.jobs, body)
        if reply is None:
            reply = access.filter_reply(cx, env.type, body, req.user,
                                        declared.handler(cx, req))
        return reply
    try:
        try:
            reply = answer()
        except DBAPIError as exc:
            # A read on a connection the server ended (a restart, a failover) is asked again,
            # once, on the fresh connection the pool now hands out.
            if not (exc.connection_invalidated and declared.read):
                raise
            log.warning("database connection lost serving %s; asking again", env.type)
            reply = answer()
    except RequestError as exc:
        cx.live.errors[exc.code] += 1
        reply = p.Error(exc.code, exc.message, exc.field)
    except SQLAlchemyError as exc:
        cx.live.errors["database"] += 1
        log.exception("database error serving %s", env.type)
        reply = p.Error("database", f"database error: {type(exc).__name__}")
    except Exception as exc:   # a bug: the client still gets an answer, the log gets the trace
        if isinstance(exc, ValueError) and _NUL_REFUSED in str(exc):
            # PostgreSQL's driver refuses a NUL character in any text (outside any database
            # error): whatever field the client put it in, it is the client's input.
            cx.live.errors["invalid"] += 1
            reply = p.Error("invalid", "text with a NUL character (0x00) cannot be stored or "
                                       "searched for")
        else:
            cx.live.errors["internal"] += 1
            log.exception("internal error serving %s", env.type)
            reply = p.Error("internal",
                            f"internal error serving {env.type}; see the supervisor log")
    if reply is not None and auditing.audited(env.type, declared.read):
        auditing.note(cx, env.type, body, req.user, route, reply)
    return reply




# --- submitting and reading jobs ------------------------------------------------------------------

@request("ping", role=ARTIST, what="asking the supervisor's version")
def _ping(cx: Context, req: Request) -> p.Body:
    return p.Pong(cuefarm.__version__, cx.id, cx.live.event_seq, cx.cfg.port + 2,
                  cx.cfg.max_frames_per_job)


@request("submit", role=ARTIST, what="submitting jobs")
def _submit(cx: Context, req: Request) -> p.Body:
    body: p.Submit = req.body
    frames = bigsubmit.check_size(body.jobs, cx.cfg.max_frames_per_submit,
                                  cx.cfg.max_layers_per_submit, cx.cfg.max_frames_per_job)
    if bigsubmit.huge(cx, body, frames, req.size):    # stored off the loop, answered once stored
        cx.live.big_submits.start(cx, req, lambda specs: check_loader_env(
            specs, cx.cfg.loader_env_allow), frames)
        return None
    try:
        specs = validate_submission(body.jobs, cx.cfg.max_frames_per_job)
    except SpecError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    check_loader_env(specs, cx.cfg.loader_env_allow)
    sid = body.submission
    if sid is not None and not (0 < len(sid) <= 64 and sid.isascii() and sid.isprintable()):
        raise RequestError("invalid", "a submission id is 1 to 64 printable ASCII characters",
                           "submission")
    now = cx.clock()
    try:
        with cx.begin() as (conn, out):
            ids = submit_store.submit(conn, specs, req.user, now,
                                      access.hidden_projects(cx.policy, conn, req.user), sid)
            bigsubmit.set_rules(cx, conn, ids, specs)
            out.note(work.Touched(jobs=set(ids)))
            out.wake()
    except submit_store.SubmitError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    except IntegrityError:
        if sid is None:
            raise
        # The same submission stored meanwhile by a retry on another supervisor: its jobs.
        ids = cx.read(lambda c: submit_store.submit(c, [], req.user, now, frozenset(), sid))
    log.info("%s submitted jobs %s", req.user, ids)
    return p.JobIds(ids)


def check_loader_env(specs, allow: list[str]) -> None:
    """Refuse variables that change how programs load, unless the settings allow them."""
    for i, spec in enumerate(specs):
        for j, layer in enumerate(spec.layers):
            bad = loaderenv.refused(layer.env, spec.project, allow)
            if bad:
                raise RequestError(
                    "invalid", f"job {spec.name!r}, layer {layer.name!r}: {', '.join(bad)} "
                    f"change{'s' if len(bad) == 1 else ''} how programs load and cannot be set "
                    f"by a job (an admin can allow it for project {spec.project!r} with the "
                    f"supervisor setting loader_env_allow = [\"{spec.project}:{bad[0]}\"])",
                    f"jobs[{i}].layers[{j}].env.{bad[0]}")


@request("list_jobs", role=ARTIST, what="listing jobs", read=True)
def _list_jobs(cx: Context, req: Request) -> p.Body:
    body: p.ListJobs = req.body
    return p.Rows(cx.read(lambda c: rows.job_rows(c, None, body.project, body.user,
                                                  body.include_finished)))


def _job(cx: Context, job_id: int) -> dict:
    found = cx.read(lambda c: rows.job_rows(c, [job_id]))
    if not found:
        raise RequestError("not_found", f"no job with id {job_id}", "job_id")
    return found[0]


@request("get_job", role=ARTIST, what="reading a job", jobs="job_id", read=True)
def _get_job(cx: Context, req: Request) -> p.Body:
    return p.Row(_job(cx, req.body.job_id))


@request("list_layers", role=ARTIST, what="listing layers", jobs="job_id", read=True)
def _list_layers(cx: Context, req: Request) -> p.Body:
    body: p.JobRef = req.body
    _job(cx, body.job_id)
    return p.Rows(cx.read(lambda c: rows.layer_rows(c, body.job_id)))


def _check_page(body: p.ListFrames) -> None:
    if body.offset < 0:
        raise RequestError("invalid", f"offset must be 0 or more, not {body.offset}", "offset")
    if body.limit is not None and not 1 <= body.limit <= p.MAX_FRAMES_PAGE:
        raise RequestError("invalid", f"limit must be from 1 to {p.MAX_FRAMES_PAGE} "
                                      f"(or left out for all frames), not {body.limit}", "limit")


@request("list_frames", role=ARTIST, what="listing frames", jobs="job_id", read=True)
def _list_frames(cx: Context, req: Request) -> p.Body:
    body: p.ListFrames = req.body
    _check_page(body)
    if body.host is not None:
        return p.Rows(_host_frames(cx, body))
    if body.job_id is None:
        raise RequestError("invalid", "list_frames needs a job_id, or a host for the frames "
                                      "running there", "job_id")
    _job(cx, body.job_id)
    if body.layer is not None:      # a layer the job does not have is named, not listed empty
        cx.read(lambda c: control_errors(rows.find_layer, c, body.job_id, body.layer))
    # Unpaged asks are answered only while the answer fits in one page: a reply must never
    # outgrow the client's MAXMSGSIZE (ZeroMQ would drop the connection without a word).
    limit = p.MAX_FRAMES_PAGE + 1 if body.limit is None else body.limit
    found = cx.read(lambda c: rows.frame_rows(c, body.job_id, None, body.layer,
                                              body.states, body.offset, limit))
    if body.limit is None and len(found) > p.MAX_FRAMES_PAGE:
        raise RequestError("too_large", f"job {body.job_id} has more than {p.MAX_FRAMES_PAGE} "
                                        "such frames: ask in pages (offset, limit)", "limit")
    return p.Rows(found)


def _host_frames(cx: Context, body: p.ListFrames) -> list[dict]:
    """The frames running on one host: job, layer and states do not apply."""
    for name in ("job_id", "layer", "states"):
        if getattr(body, name) is not None:
            raise RequestError("invalid", f"{name} cannot be combined with host (a host's "
                                          "frames are those running there, from every job)", name)

    def read(conn):
        host_id = host_store.host_id(conn, body.host)
        if host_id is None:
            raise RequestError("not_found", f"no host named {body.host!r}", "host")
        return rows.running_frame_rows(conn, host_id, body.offset, body.limit)
    return cx.read(read)


@request("list_hosts", role=ARTIST, what="listing hosts", read=True)
def _list_hosts(cx: Context, req: Request) -> p.Body:
    return p.Rows(cx.read(rows.host_rows))


# --- controlling jobs and frames ------------------------------------------------------------------

@request("job_control", role=ARTIST, what="controlling jobs", jobs="job_ids", own=True,
         actions={"priority": (WRANGLER, "Changing priority")})
def _job_control(cx: Context, req: Request) -> p.Body:
    body: p.JobControl = req.body
    now = cx.clock()
    outcome = _apply(cx, lambda c, o: control.job_control(c, body.action, body.job_ids,
                                                          body.value, now, o, body.clear_bans))
    if body.clear_bans:
        cx.live.bans.invalidate()
    log.info("%s: %s jobs %s (%d)", req.user, body.action, body.job_ids, outcome.count)
    return p.Done(outcome.count)


@request("frame_control", role=ARTIST, what="controlling frames", jobs="job_id", own=True)
def _frame_control(cx: Context, req: Request) -> p.Body:
    body: p.FrameControl = req.body
    now = cx.clock()
    outcome = _apply(cx, lambda c, o: control.frame_control(c, body.action, body.job_id,
                                                            body.frame_ids, now, o, body.layer,
                                                            body.numbers))
    return p.Done(outcome.count)


@request("set_job", role=WRANGLER, what="Changing a job (job set)", jobs="job_id")
def _set_job(cx: Context, req: Request) -> p.Body:
    body: p.SetJob = req.body
    try:
        values = validate_job_changes(body.values)
    except SpecError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    _apply(cx, lambda c, o: (admin.set_job(c, body.job_id, values),
                             o.touched.jobs.add(body.job_id)))
    log.info("%s: job %d set %s", req.user, body.job_id, values)
    return p.Done(1)


@request("set_layer", role=WRANGLER, what="Changing a layer (layer set)", jobs="job_id")
def _set_layer(cx: Context, req: Request) -> p.Body:
    body: p.SetLayer = req.body
    try:
        values = validate_layer_changes(body.values)
    except SpecError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    ids: list[int] = []

    def change(conn, outcome):
        ids.append(admin.set_layer(conn, body.job_id, body.layer, values))
        outcome.touched.layers.add(ids[0])
        outcome.touched.jobs.add(body.job_id)
    _apply(cx, change)
    cx.live.forget_layer(ids[0])
    log.info("%s: job %d layer %s set %s", req.user, body.job_id, body.layer, values)
    return p.Done(1)


@request("list_dependencies", role=ARTIST, what="listing dependencies", jobs="job_id",
         read=True)
def _list_dependencies(cx: Context, req: Request) -> p.Body:
    body: p.JobRef = req.body
    return p.Rows(cx.read(lambda c: control_errors(admin.dependency_rows, c, body.job_id)))


@request("dependency_control", role=WRANGLER, what="Satisfying or dropping a dependency",
         jobs="job_id")
def _dependency_control(cx: Context, req: Request) -> p.Body:
    body: p.DependencyControl = req.body
    now = cx.clock()
    _apply(cx, lambda c, o: admin.dependency_control(c, body.action, body.job_id,
                                                     body.dependency_id, now, o.touched))
    log.info("%s: %s dependency %d of job %d", req.user, body.action, body.dependency_id,
             body.job_id)
    return p.Done(1)


@request("bad_hosts", role=ARTIST, what="listing a job's bad hosts", jobs="job_id", read=True)
def _bad_hosts(cx: Context, req: Request) -> p.Body:
    body: p.JobRef = req.body
    now = cx.clock()
    return p.Rows(cx.read(lambda c: control_errors(admin.bad_hosts, c, body.job_id, now)))


@request("clear_bad_hosts", role=WRANGLER, what="Clearing a job's bad-host list", jobs="job_id")
def _clear_bad_hosts(cx: Context, req: Request) -> p.Body:
    body: p.ClearBadHosts = req.body
    counts: list[int] = []
    _apply(cx, lambda c, o: counts.append(admin.clear_bad_hosts(c, body.job_id, body.host,
                                                                o.touched)))
    cx.live.bans.invalidate()
    log.info("%s: cleared bad host %s of job %d", req.user, body.host or "(all)", body.job_id)
    return p.Done(counts[0])


# --- projects and limits --------------------------------------------------------------------------

@request("set_project", role=WRANGLER, what="Changing a project (projects set)")
def _set_project(cx: Context, req: Request) -> p.Body:
    body: p.SetProject = req.body
    if not NAME_RE.fullmatch(body.name):     # as a job's project is named
        raise RequestError("invalid", NAME_WORDS.format(value=repr(body.name)[:140]), "name")
    _apply(cx, lambda c, o: admin.set_project(c, body.name, body.guaranteed, body.max_slots,
                                              body.unlimited))
    log.info("%s: project %s guaranteed=%s max=%s", req.user, body.name, body.guaranteed,
             "none" if body.unlimited else body.max_slots)
    return p.Done(1)


@request("list_projects", role=ARTIST, what="listing projects", read=True)
def _list_projects(cx: Context, req: Request) -> p.Body:
    return p.Rows(cx.read(admin.project_rows))


@request("set_limit", role=WRANGLER, what="Setting a limit")
def _set_limit(cx: Context, req: Request) -> p.Body:
    body: p.SetLimit = req.body
    _apply(cx, lambda c, o: admin.set_limit(c, body.name, body.max, body.per_host))
    log.info("%s: limit %s = %d", req.user, body.name, body.max)
    return p.Done(1)


@request("delete_limit", role=WRANGLER, what="Deleting a limit")
def _delete_limit(cx: Context, req: Request) -> p.Body:
    _apply(cx, lambda c, o: admin.delete_limit(c, req.body.name))
    return p.Done(1)


@request("list_limits", role=ARTIST, what="listing limits", read=True)
def _list_limits(cx: Context, req: Request) -> p.Body:
    return p.Rows(cx.read(admin.limit_rows))


# --- hosts ----------------------------------------------------------------------------------------

@request("host_control", role=ADMIN, what="Locking and unlocking hosts")
def _host_control(cx: Context, req: Request) -> p.Body:
    body: p.HostControl = req.body
    if body.action not in ("lock", "unlock"):
        raise RequestError("invalid", f"unknown host action {body.action!r} (lock, unlock)",
                           "action")
    lock = body.action == "lock"
    changed: list = []

    def change(conn, outcome):
        changed.extend(control.lock_hosts(conn, body.hosts, lock, body.purge, body.slots,
                                          lambda ids: schedules.override_until(cx, conn, ids),
                                          outcome))
    outcome = _apply(cx, change)
    for r in changed:
        w = cx.live.registry.by_id.get(r.id)
        if w is not None:
            w.locked, w.lock_slots = lock, (body.slots if lock else None)
    log.info("%s: %s %s%s", req.user, body.action, body.hosts, " (purge)" if body.purge else "")
    return p.Done(outcome.count)


def _refresh_worker(cx: Context, host_id: int) -> None:
    """Re-read a host's admin settings into the live view after a change."""
    row = cx.read(lambda c: host_store.admin_settings(c, host_id))
    registry = cx.live.registry
    w = registry.by_id.get(host_id)
    if w is not None:
        w.slots = w.offered if row.slots_override is None else row.slots_override
        w.tags = frozenset(hostadmin.effective_tags(row))
        w.draining = row.drain is not None
        registry.version += 1


@request("host_slots", role=ADMIN, what="Setting a host's slots")
def _host_slots(cx: Context, req: Request) -> p.Body:
    body: p.HostSlots = req.body
    ids: list[int] = []
    _apply(cx, lambda c, o: (ids.append(hostadmin.set_slots(c, body.host, body.slots)),
                             o.touched.hosts.update(ids)))
    _refresh_worker(cx, ids[0])
    log.info("%s: host %s slots %s", req.user, body.host, body.slots)
    return p.Done(1)


@request("host_tags", role=ADMIN, what="Changing a host's tags")
def _host_tags(cx: Context, req: Request) -> p.Body:
    body: p.HostTags = req.body
    ids: list[int] = []
    _apply(cx, lambda c, o: (ids.append(hostadmin.set_tags(c, body.host, body.add, body.remove)),
                             o.touched.hosts.update(ids)))
    _refresh_worker(cx, ids[0])
    return p.Done(1)


@request("host_drain", role=ADMIN, what="Draining hosts")
def _host_drain(cx: Context, req: Request) -> p.Body:
    body: p.HostDrain = req.body
    drained: list = []
    _apply(cx, lambda c, o: (drained.extend(hostadmin.set_drain(c, body.hosts, body.then,
                                                                body.cancel)),
                             o.touched.hosts.update(r.id for r in drained)))
    for r in drained:
        _refresh_worker(cx, r.id)
        w = cx.live.registry.by_id.get(r.id)
        if w is not None and w.identity is not None:
            cx.out.send(w.identity, p.Drain(then=body.then, cancel=body.cancel))
    log.info("%s: drain %s then %s%s", req.user, body.hosts, body.then,
             " (cancelled)" if body.cancel else "")
    return p.Done(len(drained))


@request("check_path", role=ARTIST, what="checking a path")
def _check_path(cx: Context, req: Request) -> p.Body:
    body: p.CheckPath = req.body
    row = cx.read(lambda c: host_store.path_facts(c, body.host))
    if row is None:
        raise RequestError("invalid", f"no host named {body.host!r}", "host")
    w = cx.live.registry.by_id.get(row.id)
    central = hostadmin.central_rules(cx.live.path_map_rows, row.os,
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


# --- admission ------------------------------------------------------------------------------------

@request("admission_control", role=ADMIN, what="Admitting or banning hosts")
def _admission_control(cx: Context, req: Request) -> p.Body:
    body: p.AdmissionControl = req.body
    now = cx.clock()
    ban = body.action == "ban"

    def change(conn, outcome):
        ids = hostadmin.admission_control(conn, body.action, body.names, body.reason, now)
        if ban and ids:
            # A ban takes effect now: its frames are requeued (no retry spent).
            control.kill_running_on_hosts(conn, ids, outcome)
        outcome.touched.hosts.update(ids)
    # The purge's kills are addressed to the workers while they are still connected (below,
    # a banned worker is disconnected before the loop sends anything), ahead of the refusal.
    _apply(cx, change)
    if cx.gate is not None and body.action == "admit":
        keys_api.reload_now(cx)       # the key it was pending with is bound: it may come in
    registry = cx.live.registry
    for name in body.names:
        w = registry.by_name.get(name)
        if w is not None:
            w.banned = ban
            w.locked, w.lock_slots = ban, (0 if ban else None)
            registry.version += 1
            if ban and w.identity is not None:
                # rqd stops; each retry is refused while banned.  The first retry comes soon
                # because it brings the completions of the purged frames (rqd keeps them until
                # acknowledged), which puts those frames back in the queue; later retries wait
                # the usual admission_retry.
                cx.out.send(w.identity, p.Refused(
                    f"{name} is banned from this farm"
                    + (f" ({body.reason})" if body.reason else ""),
                    retry_after=min(cx.cfg.admission_retry, 2.0) if w.running
                    else cx.cfg.admission_retry))
                registry.disconnect(w, cx.mono())
                w.clear()
    log.info("%s: %s %s", req.user, body.action, body.names)
    return p.Done(len(body.names))


@request("list_admission", role=ARTIST, what="listing admission", read=True)
def _list_admission(cx: Context, req: Request) -> p.Body:
    return p.Rows(cx.read(hostadmin.admission_rows))


@request("set_admission", role=ADMIN, what="Changing the admission policy")
def _set_admission(cx: Context, req: Request) -> p.Body:
    body: p.SetAdmission = req.body
    policy: list = []
    _apply(cx, lambda c, o: (policy.append(hostadmin.set_admission(
        c, default_admission(cx.cfg), body.mode, body.networks, body.patterns)),
        o.reload.append("admission")))
    cx.live.admission = policy[0]
    log.info("%s: admission %s", req.user, cx.live.admission)
    return p.Row(cx.live.admission)


# --- lock schedules and path maps -----------------------------------------------------------------

@request("set_schedule", role=ADMIN, what="Adding a lock schedule")
def _set_schedule(cx: Context, req: Request) -> p.Body:
    ids: list[int] = []
    _apply(cx, lambda c, o: ids.append(hostadmin.add_schedule(c, req.body)))
    schedules.apply(cx)
    return p.Done(ids[0])


@request("list_schedules", role=ARTIST, what="listing lock schedules", read=True)
def _list_schedules(cx: Context, req: Request) -> p.Body:
    return p.Rows(cx.read(hostadmin.schedule_rows))


@request("delete_schedule", role=ADMIN, what="Deleting a lock schedule")
def _delete_schedule(cx: Context, req: Request) -> p.Body:
    _apply(cx, lambda c, o: hostadmin.delete_schedule(c, req.body.id))
    schedules.apply(cx)
    return p.Done(1)


@request("add_path_map", role=ADMIN, what="Adding a path map")
def _add_path_map(cx: Context, req: Request) -> p.Body:
    ids: list[int] = []
    _apply(cx, lambda c, o: (ids.append(hostadmin.add_path_map(c, req.body)),
                             o.reload.append("path maps")))
    cx.live.path_map_rows = cx.read(hostadmin.path_map_rows)
    return p.Done(ids[0])


@request("list_path_maps", role=ARTIST, what="listing path maps", read=True)
def _list_path_maps(cx: Context, req: Request) -> p.Body:
    return p.Rows(cx.read(hostadmin.path_map_rows))


@request("delete_path_map", role=ADMIN, what="Deleting a path map")
def _delete_path_map(cx: Context, req: Request) -> p.Body:
    _apply(cx, lambda c, o: (hostadmin.delete_path_map(c, req.body.id),
                             o.reload.append("path maps")))
    cx.live.path_map_rows = cx.read(hostadmin.path_map_rows)
    return p.Done(1)


# --- logs -----------------------------------------------------------------------------------------

@request("get_log", role=ARTIST, what="reading logs", jobs="job_id")
def _get_log(cx: Context, req: Request) -> None:
    body: p.GetLog = req.body
    aid, host_id, host_name, ended = cx.read(lambda c: control_errors(
        rows.find_attempt, c, body.job_id, body.layer, body.frame, body.attempt))
    w = cx.live.registry.by_id.get(host_id)
    if w is None or w.identity is None:
        if bus.shared(cx.engine) and cx.read(lambda c: host_store.served_elsewhere(
                c, [host_id], cx.owner, cx.clock() - cx.stale_after)):
            # Its worker is connected to another supervisor: ask that one for the log.
            limit = max(1, min(body.limit, RELAYED_MAX))
            token = cx.live.logs.ask(req.route, req.request_id, host_name, cx.mono(), ended)
            with cx.begin() as (_, out):
                out.tell_farm(log_ask=[token, host_id, aid, body.offset, limit])
            return None
        raise RequestError("unavailable", f"host {host_name} is not connected; the log of "
                                          f"attempt {aid} is on that host"
                                          + (f" (the attempt ended: {ended})" if ended else ""))
    limit = max(1, min(body.limit, p.MAX_WORKER_MESSAGE // 2))
    token = cx.live.logs.ask(req.route, req.request_id, host_name, cx.mono(), ended)
    cx.out.send(w.identity, p.LogRequest(token, aid, body.offset, limit))
    # Answered when the worker replies (supervisor.logrelay), or by the loop when the request
    # cannot be delivered or the worker does not answer in time.
    return None
