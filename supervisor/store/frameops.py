"""What wranglers do to a layer's queue: frames to the front, frames staggered, frames retried
with more memory.  One small helper per command; each raises ControlError on bad input."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update

from cuefarm.states import FrameState
from supervisor.store import control, jobs
from supervisor.store.errors import ControlError
from supervisor.store.models import Attempt, Frame, Layer

F = FrameState
# Frames whose place in the queue still matters: they have not started.
QUEUED = (F.WAITING.value, F.DEPEND.value)
DEFAULT_FACTOR = 1.5
MAX_FACTOR = 16.0
MAX_MEMORY = 1 << 30        # MB; the spec's bound on a layer's memory
MB = 1024 * 1024


def _queued(conn: Connection, ids: list[int]) -> dict[int, list[Any]]:
    """{layer id: its frames among `ids` not started yet, in dispatch order}."""
    out: dict[int, list[Any]] = defaultdict(list)
    for r in conn.execute(select(Frame.id, Frame.layer_id, Frame.idx, Frame.job_id)
                          .where(Frame.id.in_(ids), Frame.state.in_(QUEUED))
                          .order_by(Frame.layer_id, Frame.idx).with_for_update()):
        out[r.layer_id].append(r)
    return out


def _set_idx(conn: Connection, pairs: list[tuple[int, int]]) -> None:
    conn.execute(update(Frame).where(Frame.id == bindparam("fid"))
                 .values(idx=bindparam("new_idx")).execution_options(synchronize_session=False),
                 [{"fid": f, "new_idx": i} for f, i in pairs])


def to_front(conn: Connection, job_id: int, ids: list[int], out: control.Outcome) -> None:
    """Move frames that have not started ahead of every other frame of their layer, keeping
    their order among themselves: they are dispatched next."""
    by_layer = _queued(conn, ids)
    if not by_layer:
        raise ControlError("none of these frames is waiting to run (only WAITING and DEPEND "
                           "frames have a place in the queue)", "frame_ids")
    for layer_id, rows in by_layer.items():
        first = conn.execute(select(func.min(Frame.idx))
                             .where(Frame.layer_id == layer_id)).scalar()
        start = first - len(rows)
        _set_idx(conn, [(r.id, start + k) for k, r in enumerate(rows)])
        out.touched.layers.add(layer_id)
        out.touched.frames.update(r.id for r in rows)
    out.touched.jobs.add(job_id)
    out.count = sum(len(rows) for rows in by_layer.values())


def staggered(items: list[Any], every: int) -> list[Any]:
    """`items` reordered every `every`-th first: 1, 1+N, 1+2N, ..., then 2, 2+N, ..."""
    return [items[i] for start in range(every) for i in range(start, len(items), every)]


def stagger(conn: Connection, job_id: int, layer: str | None, ids: list[int], every: int,
            out: control.Outcome) -> None:
    """Spread frames that have not started (those among `ids`, or every one of `layer` when
    `ids` is empty): each layer's frames take the places they held, every `every`-th first."""
    if isinstance(every, bool) or not 2 <= every <= 1_000_000:
        raise ControlError(f"stagger needs a step of 2 or more, not {every}", "every")
    if not ids:
        layer_id, _ = jobs.find_layer(conn, job_id, layer)
        ids = list(conn.execute(select(Frame.id).where(Frame.layer_id == layer_id,
                                                       Frame.state.in_(QUEUED))).scalars())
        if not ids:
            raise ControlError(f"layer {layer!r} of job {job_id} has no frames waiting to run",
                               "layer")
    by_layer = _queued(conn, ids)
    if not by_layer:
        raise ControlError("none of these frames is waiting to run (only WAITING and DEPEND "
                           "frames have a place in the queue)", "frame_ids")
    for layer_id, rows in by_layer.items():
        places = [r.idx for r in rows]
        _set_idx(conn, [(r.id, i) for r, i in zip(staggered(rows, every), places)])
        out.touched.layers.add(layer_id)
        out.touched.frames.update(r.id for r in rows)
    out.touched.jobs.add(job_id)
    out.count = sum(len(rows) for rows in by_layer.values())


def retry_more_memory(conn: Connection, job_id: int, ids: list[int], factor: float | None,
                      memory: int | None, now: float, out: control.Outcome
                      ) -> list[dict[str, Any]]:
    """Raise the memory reservation of the frames' layers, then retry the frames (running ones
    restart).  With `memory`, each layer reserves that many MB; otherwise `factor` (1.5 by
    default) times the larger of its reservation and the frames' latest peak.  A reservation
    that would not grow is refused: the frames would die the same way.  Return each layer's
    {layer, was, memory}."""
    if memory is not None and factor is not None:
        raise ControlError("give a memory amount or a factor, not both", "memory")
    if memory is not None and (isinstance(memory, bool) or not 1 <= memory <= MAX_MEMORY):
        raise ControlError(f"memory is a whole number of MB from 1 to {MAX_MEMORY}, not "
                           f"{memory}", "memory")
    if factor is not None and not (math.isfinite(factor) and 1.0 < factor <= MAX_FACTOR):
        raise ControlError(f"the factor must be above 1 and at most {MAX_FACTOR:g}, not "
                           f"{factor}", "factor")
    peaks: dict[int, int] = defaultdict(int)
    frame_rows = conn.execute(select(Frame.layer_id, Frame.attempt,
                                     func.coalesce(Attempt.peak_rss, 0).label("peak"))
                              .outerjoin(Attempt, (Attempt.frame_id == Frame.id)
                                         & (Attempt.number == Frame.attempt))
                              .where(Frame.id.in_(ids))).all()
    for r in frame_rows:
        peaks[r.layer_id] = max(peaks[r.layer_id], int(r.peak))
    changed = []
    for lay in conn.execute(select(Layer.id, Layer.name, Layer.memory)
                            .where(Layer.id.in_(list(peaks))).order_by(Layer.id)
                            .with_for_update()):
        peak_mb = math.ceil(peaks[lay.id] / MB)
        if memory is not None:
            new = memory
        else:
            base = max(lay.memory, peak_mb)
            if base <= 0:
                raise ControlError(f"layer {lay.name!r} reserves no memory and its frames "
                                   "recorded no peak: give the memory to reserve in MB",
                                   "memory")
            new = min(MAX_MEMORY, math.ceil(base * (factor or DEFAULT_FACTOR)))
        if new <= lay.memory:
            raise ControlError(f"layer {lay.name!r} already reserves {lay.memory} MB; "
                               f"{new} MB is no more", "memory")
        conn.execute(update(Layer).where(Layer.id == lay.id).values(memory=new))
        changed.append({"layer": lay.name, "layer_id": lay.id, "was": int(lay.memory),
                        "memory": new})
        out.touched.layers.add(lay.id)
    control.frame_control(conn, "retry", job_id, ids, now, out)
    return changed


def layer_ids(conn: Connection, job_id: int, names: list[str]) -> list[int]:
    """The ids of a job's layers named `names`."""
    return list(conn.execute(select(Layer.id).where(Layer.job_id == job_id,
                                                    Layer.name.in_(names))).scalars())
