"""Handlers of what wranglers do to queues and dependencies of submitted jobs: frames to the
front of their layer, staggered, retried with more memory; dependencies added between jobs
already on the farm, and what waits on a job."""

from __future__ import annotations

import logging

from cuefarm import protocol as p
from supervisor import access
from supervisor.context import Context
from supervisor.requests import Request, RequestError, control_errors, request
from supervisor.requests import apply_control as _apply
from supervisor.roles import ARTIST, WRANGLER
from supervisor.store import control, depends, frameops, reframe

log = logging.getLogger(__name__)


@request("frame_order", role=ARTIST, what="reordering frames", jobs="job_id", own=True)
def _frame_order(cx: Context, req: Request) -> p.Body:
    body: p.FrameOrder = req.body
    if body.how not in ("front", "stagger"):
        raise RequestError("invalid", f"unknown order {body.how!r} (front, stagger)", "how")

    def change(conn, o):
        if body.how == "stagger" and not body.frame_ids and not body.numbers:
            frameops.stagger(conn, body.job_id, body.layer, [], body.every, o)
            return
        ids = control.named_frames(conn, body.job_id, body.frame_ids, body.layer,
                                   body.numbers)
        if body.how == "front":
            frameops.to_front(conn, body.job_id, ids, o)
        else:
            frameops.stagger(conn, body.job_id, body.layer, ids, body.every, o)
    outcome = _apply(cx, change)
    log.info("%s: job %d frames %s (%d)", req.user, body.job_id, body.how, outcome.count)
    return p.Done(outcome.count)


@request("retry_more_memory", role=ARTIST, what="retrying frames with more memory",
         jobs="job_id", own=True)
def _retry_more_memory(cx: Context, req: Request) -> p.Body:
    body: p.RetryMoreMemory = req.body
    now = cx.clock()
    layers: list[dict] = []

    def change(conn, o):
        ids = control.named_frames(conn, body.job_id, body.frame_ids, body.layer,
                                   body.numbers)
        layers.extend(frameops.retry_more_memory(conn, body.job_id, ids, body.factor,
                                                 body.memory, now, o))
    outcome = _apply(cx, change)
    for lay in layers:
        cx.live.forget_layer(lay.pop("layer_id"))
    log.info("%s: job %d retried %d frames with more memory %s", req.user, body.job_id,
             outcome.count, layers)
    return p.Row({"retried": outcome.count, "layers": layers})


@request("add_dependency", role=ARTIST, what="adding dependencies", jobs="job_id", own=True)
def _add_dependency(cx: Context, req: Request) -> p.Body:
    body: p.AddDependency = req.body
    now = cx.clock()
    added: list[int] = []

    def change(conn, o):
        hidden = access.hidden_projects(cx.policy, conn, req.user)
        added.append(depends.add_dependency(conn, body.kind, body.job_id, body.layer,
                                            body.target_job_id, body.target_layer, now,
                                            o.touched, hidden))
    _apply(cx, change)
    log.info("%s: job %d%s waits for job %d%s (%s)", req.user, body.job_id,
             f"/{body.layer}" if body.layer else "", body.target_job_id,
             f"/{body.target_layer}" if body.target_layer else "", body.kind)
    return p.Done(added[0])


@request("set_layer_range", role=WRANGLER, what="Changing a layer's frame range",
         jobs="job_id")
def _set_layer_range(cx: Context, req: Request) -> p.Body:
    body: p.SetLayerRange = req.body
    now = cx.clock()
    counts: list[int] = []
    _apply(cx, lambda c, o: counts.append(reframe.set_range(
        c, body.job_id, body.layer, body.range, body.chunk, cx.cfg.max_frames_per_job, now,
        o.touched)))
    for layer_id in cx.read(lambda c: frameops.layer_ids(c, body.job_id, [body.layer])):
        cx.live.forget_layer(layer_id)
    log.info("%s: job %d layer %s range %s chunk %s (%d frames)", req.user, body.job_id,
             body.layer, body.range, body.chunk, counts[0])
    return p.Done(counts[0])


@request("list_dependants", role=ARTIST, what="listing what waits on a job", jobs="job_id",
         read=True)
def _list_dependants(cx: Context, req: Request) -> p.Body:
    body: p.JobRef = req.body
    return p.Rows(cx.read(lambda c: control_errors(
        depends.dependant_rows, c, body.job_id,
        access.hidden_projects(cx.policy, c, req.user))))
