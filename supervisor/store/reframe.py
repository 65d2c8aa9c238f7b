"""A layer's frame range and chunk changed after submission, while none of its frames has run:
its frames are made again from them."""

from __future__ import annotations

from sqlalchemy import Connection, delete, func, or_, select, update

from cuefarm import frames as franges
from cuefarm.spec import LAYER_FIELDS
from cuefarm.states import FrameState
from supervisor.store.counters import COUNTER_NAMES
from supervisor.store.errors import ControlError
from supervisor.store.models import Dependency, Frame, Layer
from supervisor.store.submit import _insert_frames
from supervisor.store.work import Touched

F = FrameState
UNSTARTED = (F.WAITING.value, F.DEPEND.value)


def set_range(conn: Connection, job_id: int, layer: str, frange: str, chunk: int | None,
              max_frames: int, now: float, touched: Touched) -> int:
    """Make the frames of `layer` again from `frange` and `chunk` (the layer's chunk when
    None).  Refused while any of its frames has run, finished or been marked done, while it is
    in a frame-by-frame dependency (its frames are what the edges join), and when the job
    would exceed `max_frames`.  Return the layer's new number of frames (chunks)."""
    key = LAYER_FIELDS["chunk"]
    if chunk is not None and (isinstance(chunk, bool) or not key.lo <= chunk <= key.hi):
        raise ControlError(f"chunk is a whole number from {key.lo} to {key.hi}, not {chunk}",
                           "chunk")
    lay = conn.execute(select(Layer.id, Layer.name, Layer.chunk, Layer.deps_left)
                       .where(Layer.job_id == job_id, Layer.name == layer)
                       .with_for_update()).first()
    if lay is None:
        if conn.execute(select(Layer.id).where(Layer.job_id == job_id)).first() is None:
            raise ControlError(f"no job with id {job_id}", "job_id", "not_found")
        raise ControlError(f"job {job_id} has no layer {layer!r}", "layer", "not_found")
    # Locked first: a dispatcher (SKIP LOCKED) then leaves them be, and what is counted below
    # is what was committed before.
    conn.execute(select(Frame.id).where(Frame.layer_id == lay.id).with_for_update()).all()
    started = conn.execute(select(func.count()).select_from(Frame).where(
        Frame.layer_id == lay.id,
        or_(Frame.attempt > 0, Frame.state.not_in(UNSTARTED)))).scalar()
    if started:
        raise ControlError(f"{started} frame(s) of layer {layer!r} have run or are done: the "
                           "range and chunk change only while no frame has", "range")
    joined = conn.execute(select(Dependency.id).where(
        Dependency.kind == "frame",
        or_(Dependency.layer_id == lay.id, Dependency.target_layer_id == lay.id))).first()
    if joined is not None:
        raise ControlError(f"layer {layer!r} is in a frame-by-frame dependency (dependency "
                           f"{joined.id}): drop it before changing the range", "range")
    others = conn.execute(select(func.coalesce(func.sum(Layer.frames_total), 0))
                          .where(Layer.job_id == job_id, Layer.id != lay.id)).scalar()
    try:
        numbers = franges.expand(frange, max_frames)
        starts, ends, labels = franges.chunk_columns(numbers, chunk or lay.chunk)
    except franges.RangeError as exc:
        raise ControlError(str(exc), "range") from None
    if not numbers:
        raise ControlError(f"frame range {frange!r} has no frames", "range")
    if others + len(starts) > max_frames:
        raise ControlError(f"the job would have {others + len(starts):,} frames, more than the "
                           f"maximum of {max_frames:,}", "range")
    state = F.DEPEND.value if lay.deps_left > 0 else F.WAITING.value
    conn.execute(delete(Frame).where(Frame.layer_id == lay.id))
    _insert_frames(conn, job_id, lay.id, starts, ends, labels, [state] * len(starts),
                   [0] * len(starts), now)
    counters = dict.fromkeys(COUNTER_NAMES, 0)
    counters["depend" if state == F.DEPEND.value else "waiting"] = len(starts)
    conn.execute(update(Layer).where(Layer.id == lay.id).values(
        range=frange.strip(), chunk=chunk or lay.chunk, frames_total=len(starts), **counters))
    touched.layers.add(lay.id)
    touched.jobs.add(job_id)
    return len(starts)
