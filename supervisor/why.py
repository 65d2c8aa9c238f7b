"""The why and next_for_host requests: in plain words, why frames are not running, and what a
host would run next.  Both read the live registry and matcher, so they are served on the loop."""

from __future__ import annotations

from collections import Counter
from typing import Any

import fileseq
from sqlalchemy import Connection

from cuefarm import protocol as p
from supervisor import dispatch
from supervisor.context import Context
from supervisor.matching import mismatch
from supervisor.planning import LAYERS_PER_PASS, Budget, Room, order
from supervisor.registry import Worker
from supervisor.requests import Request, control_errors, request
from supervisor.roles import ARTIST
from supervisor.store import counts, work
from supervisor.store import jobs as rows
from supervisor.store.errors import ControlError

SHOWN = 5


def _names(workers: list[Worker]) -> str:
    names = sorted(w.name for w in workers)
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def _frame_row(conn: Connection, job_id: int, layer: str | None, number: int) -> dict[str, Any]:
    for f in rows.frame_rows(conn, job_id, layer=layer):
        if f["number"] == number or number in fileseq.FrameSet(f["frames"]):
            return f
    where = f"layer {layer!r}" if layer else f"job {job_id}"
    raise ControlError(f"{where} has no frame {number}", "frame")


def _dependency_reasons(conn: Connection, layer: dict[str, Any], frame_id: int | None) -> list[str]:
    out = []
    for d in rows.layer_dependencies(conn, layer["id"]):
        target = None
        if d.target_layer_id is not None:
            target = rows.layer_progress(conn, d.target_layer_id)
        if d.kind == "frame":
            pending = rows.upstream_frames_not_done(conn, layer["id"], frame_id, 200)
            if not pending:
                continue
            dead = [f.label for f in pending if f.state == "DEAD"]
            text = (f"waiting frame by frame on layer {target.name!r} "
                    f"({len(pending)}{'+' if len(pending) == 200 else ''} upstream frames not done")
            text += f"; DEAD there: {', '.join(dead[:SHOWN])} - retry or eat them)" if dead else ")"
            out.append(text)
            continue
        if d.satisfied:
            continue
        if d.kind == "job" and d.target_layer_id is None:
            job = rows.job_rows(conn, [d.target_job_id])
            status = job[0]["status"] if job else "gone"
            text = f"waiting for job {d.target_job_id} to finish (it is {status}"
            text += "; its DEAD frames must be retried or eaten first)" if job and job[0][
                "dead"] else ")"
            out.append(text + f" [dependency #{d.id}]")
            continue
        where = f"layer {target.name!r}" + (f" of job {target.job_id}"
                                            if target.job_id != layer["job_id"] else "")
        done = target.succeeded + target.eaten
        text = f"waiting for {where} ({done}/{target.frames_total} frames done"
        if target.dead:
            text += (f", {target.dead} DEAD: it will not finish until they are retried or eaten"
                     f", or a wrangler satisfies dependency #{d.id}")
        out.append(text + ")")
    return out or ["waiting on dependencies that are being released"]


def _host_reasons(cx: Context, layer: dict[str, Any], budget: Budget) -> list[str]:
    up = [w for w in cx.live.registry.by_id.values() if w.identity is not None]
    if not up:
        return ["no worker is UP"]
    parsed = cx.live.matcher.expression(layer)
    misses = {w.host_id: mismatch(layer, w, parsed) for w in up}
    matching = [w for w in up if misses[w.host_id] is None]
    if not matching:
        counts = Counter(reason for reason in misses.values())
        common, n = counts.most_common(1)[0]
        if n == len(up):
            return [f"no UP host fits: every one {common}"]
        samples = "; ".join(f"{w.name} {misses[w.host_id]}" for w in up[:SHOWN])
        return [f"no UP host fits this layer ({len(up)} UP: {samples})"]
    reasons = []
    banned = budget.banned.get(layer["job_id"], set())
    allowed = [w for w in matching if w.host_id not in banned]
    kept_off = [w for w in matching if w.host_id in banned]
    clear = (f"clear them with cuefarm job badhosts {layer['job_id']} --all, or retry/resume "
             f"with --clear-bans")
    if not allowed:
        return [f"the bad-host list of this job excludes the only matching hosts: "
                f"{_names(matching)} ({clear})"]
    notes = []      # what keeps hosts away without stopping the frames from running elsewhere
    if kept_off:
        notes.append(f"{len(kept_off)} matching host{'s are' if len(kept_off) > 1 else ' is'} "
                     f"on this job's bad-host list: {_names(kept_off)} ({clear})")
    locked = [w for w in allowed if w.locked]
    full = [w for w in allowed if not w.locked
            and not Room(w, w.free, w.memory_free, w.gpus_free, w.used == 0).grant(layer)]
    if len(locked) + len(full) == len(allowed):
        parts = []
        if locked:
            parts.append(f"locked ({_names(locked)})")
        if full:
            parts.append(f"full ({_names(full)})")
        reasons.append((f"every matching host off the bad-host list ({len(allowed)}) is "
                        if kept_off else f"all {len(allowed)} matching hosts are ")
                       + " or ".join(parts))
    for name in layer.get("limits") or ():
        lim = budget.limits.get(name)
        if lim is None:
            reasons.append(f"limit {name!r} no longer exists")
        elif lim["used"] >= lim["max"]:
            reasons.append(f"limit {name} {lim['used']}/{lim['max']} in use")
    if budget.slots_left(layer) < max(layer["slots"], 1):
        used = budget.project_used.get(layer["project_id"], 0)
        if layer["project_max_slots"] is not None and used >= layer["project_max_slots"]:
            reasons.append(f"project {layer['project']} is at its maximum "
                           f"({used}/{layer['project_max_slots']} slots)")
        else:
            reasons.append(f"the job is at its max_slots ({budget.job_used.get(layer['job_id'], 0)}"
                           f"/{layer['job_max_slots']})")
    return (reasons or [f"ready: {layer['waiting']} frame(s) start as soon as slots free up on "
                       f"{len(allowed)} matching host(s); higher-priority work goes first"]) + notes


def _budget(cx: Context, conn: Connection, layers: list[dict[str, Any]]) -> Budget:
    job_used, project_used = counts.slots_in_use(conn)
    names = {n for lay in layers for n in (lay.get("limits") or ())}
    return Budget(job_used, project_used, counts.limit_usage(conn, names),
                  work.banned_hosts(conn, list({lay["job_id"] for lay in layers}), cx.clock()))


def _layers_of(cx: Context, conn: Connection, job_id: int) -> list[dict[str, Any]]:
    """The job's layers with the scheduler's view of them (static fields, job, project)."""
    return dispatch.with_static(cx.live, conn, work.candidate_layers_of_job(conn, job_id))


def explain(cx: Context, conn: Connection, job_id: int, layer: str | None,
            frame: int | None) -> dict[str, Any]:
    """Why the frames of a job (of one of its layers, or one frame) are not running: the
    job's name and status with the reasons, in words."""
    found = rows.job_rows(conn, [job_id])
    if not found:
        raise ControlError(f"no job with id {job_id}", "job_id")
    job = found[0]
    out = {"job_id": job_id, "job": job["name"], "status": job["status"],
           "flagged": job["flagged"] or "", "reasons": []}
    reasons = out["reasons"]
    layers = _layers_of(cx, conn, job_id)
    if layer is not None:
        layers = [lay for lay in layers if lay["name"] == layer]
        if not layers:
            raise ControlError(f"job {job_id} has no layer {layer!r}", "layer")
    if frame is not None and job["state"] == "FINISHED":
        _frame_row(conn, job_id, layer, frame)      # a frame the job lacks is refused first
    if job["state"] == "FINISHED":
        reasons.append("the job was killed" if job["killed"] else "the job is finished")
        return out
    if job["state"] == "PAUSED":
        # An automatic pause says why: every host able to run the job failed it (bad hosts),
        # or gave the same reason not to start it (the job's own problem).
        if job["flagged"].startswith(work.SAME_REFUSAL):
            reasons.append(f"{job['flagged']}; this is the job's problem, not the hosts': fix "
                           f"it, then resume the job (cuefarm resume {job_id})")
        elif job["flagged"]:
            reasons.append(f"{job['flagged']}: once the cause is fixed, clear its bad hosts "
                           f"and resume it (cuefarm resume --clear-bans {job_id})")
        else:
            reasons.append("the job is paused")
    frame_id = None
    if frame is not None:
        f = _frame_row(conn, job_id, layer, frame)
        layers = [lay for lay in layers if lay["id"] == f["layer_id"]]
        frame_id = f["id"]
        state = f["state"]
        if state == "RUNNING":
            reasons.append(f"frame {f['frames']} is running on {f['host']} "
                           f"(attempt {f['attempt']})")
            return out
        if state in ("SUCCEEDED", "EATEN"):
            reasons.append(f"frame {f['frames']} is {state}")
            return out
        if state == "DEAD":
            reasons.append(f"frame {f['frames']} is DEAD after {f['retries']} failures: "
                           "retry it to run it again")
            return out
        if state == "DEPEND":
            reasons.extend(_dependency_reasons(conn, layers[0], frame_id))
            return out
        if f["reason"]:
            reasons.append(f"its last attempt ({f['attempt_id']} on {f['host']}) did not run "
                           f"to the end: {f['reason']}")
    budget = _budget(cx, conn, layers)
    for lay in layers:
        prefix = f"layer {lay['name']}: " if len(layers) > 1 else ""
        if lay["depend"] and frame is None:
            reasons.extend(prefix + r for r in _dependency_reasons(conn, lay, None))
        if lay["waiting"] and frame is None:
            for why, n, host, hosts in rows.waiting_frame_reasons(conn, lay["id"]):
                others = f" and {hosts - 1} other host{'s' if hosts > 2 else ''}" if hosts > 1 \
                    else ""
                reasons.append(prefix + f"{n} waiting frame{'s' if n > 1 else ''} did not run "
                               f"last time: {why} (on {host}{others})")
        if lay["waiting"] and job["state"] == "ACTIVE":
            reasons.extend(prefix + r for r in _host_reasons(cx, lay, budget))
    dead = sum(lay["dead"] for lay in layers)
    if dead:
        reasons.append(f"{dead} frame{'s are' if dead > 1 else ' is'} DEAD: retry or eat "
                       f"{'them' if dead > 1 else 'it'}")
    if not reasons:
        reasons.append("nothing is waiting: every frame is running or done")
    return out


def next_for_host(cx: Context, conn: Connection, host: str, limit: int) -> list[dict]:
    """What `host` would run next, in dispatch order (ignoring how busy it is now)."""
    w = cx.live.registry.by_name.get(host)
    if w is None:
        raise ControlError(f"no host named {host!r} is known to this supervisor", "host")
    limit = max(1, min(limit, 1000))
    layers = dispatch.with_static(cx.live, conn, work.candidate_layers(conn, LAYERS_PER_PASS))
    budget = _budget(cx, conn, layers)
    out: list[dict] = []
    for lay in order(layers, budget):
        if len(out) >= limit:
            break
        if (w.host_id in budget.banned.get(lay["job_id"], ())
                or not cx.live.matcher.matches(lay, w, cx.live.registry.version)
                or not budget.limit_allows(lay, w.host_id)
                or budget.slots_left(lay) < lay["slots"]):
            continue
        for label, number in rows.waiting_frames(conn, lay["id"], limit - len(out)):
            out.append({"job_id": lay["job_id"], "job": lay["job"], "layer": lay["name"],
                        "frame": label, "number": number, "priority": lay["priority"],
                        "project": lay["project"], "host_locked": w.locked})
    return out



# --- requests -------------------------------------------------------------------------------------

@request("why", role=ARTIST, what="asking why", jobs="job_id")
def _why(cx: Context, req: Request) -> p.Body:
    body: p.Why = req.body
    return p.Row(cx.read(lambda c: control_errors(explain, cx, c, body.job_id, body.layer,
                                                  body.frame)))


@request("next_for_host", role=ARTIST, what="asking what a host runs next")
def _next_for_host(cx: Context, req: Request) -> p.Body:
    body: p.NextForHost = req.body
    return p.Rows(cx.read(lambda c: control_errors(next_for_host, cx, c, body.host,
                                                   body.limit)))
