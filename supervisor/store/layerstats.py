"""Layer statistics from the attempts the store keeps: run times, peak memory, core-hours."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, case, func, select

from supervisor.store.models import Attempt, Frame, Layer

DONE = "SUCCEEDED"
ENDED = ("SUCCEEDED", "FAILED", "LOST", "KILLED")


def layer_stats(conn: Connection, job_id: int, layer_id: int | None = None
                ) -> list[dict[str, Any]]:
    """One row per layer of the job (or the one layer), in job order: `succeeded` attempts and
    their run time `avg`, `min` and `max` (seconds; None when none succeeded), `failed`
    attempts, `peak_rss` (the highest peak of any attempt, bytes) and `core_hours` (the slots
    each ended attempt held times its run time, succeeded or not)."""
    layers = select(Layer.id, Layer.name).where(Layer.job_id == job_id).order_by(Layer.idx)
    if layer_id is not None:
        layers = layers.where(Layer.id == layer_id)
    names = conn.execute(layers).all()
    if not names:
        return []
    runtime = Attempt.stopped_at - Attempt.started_at
    done = Attempt.state == DONE
    done_runtime = case((done, runtime), else_=None)
    ended = and_(Attempt.stopped_at.is_not(None), Attempt.state.in_(ENDED))
    # Through the frames (indexed by layer) to their attempts (keyed by frame): years of
    # attempts of other jobs are never scanned.
    q = (select(Frame.layer_id,
                func.count(case((done, 1), else_=None)).label("succeeded"),
                func.count(case((Attempt.state == "FAILED", 1), else_=None)).label("failed"),
                func.avg(done_runtime).label("avg"), func.min(done_runtime).label("min"),
                func.max(done_runtime).label("max"),
                func.coalesce(func.max(Attempt.peak_rss), 0).label("peak_rss"),
                func.coalesce(func.sum(case((ended, runtime * Attempt.slots), else_=0.0)),
                              0.0).label("core_seconds"))
         .select_from(Frame).join(Attempt, Attempt.frame_id == Frame.id)
         .where(Frame.layer_id.in_([lid for lid, _ in names])).group_by(Frame.layer_id))
    found = {r.layer_id: r._mapping for r in conn.execute(q)}
    out = []
    for lid, name in names:
        r = found.get(lid, {})
        d = {"layer_id": lid, "layer": name, "succeeded": int(r.get("succeeded") or 0),
             "failed": int(r.get("failed") or 0), "peak_rss": int(r.get("peak_rss") or 0),
             "core_hours": round(float(r.get("core_seconds") or 0.0) / 3600.0, 4)}
        for k in ("avg", "min", "max"):
            v = r.get(k)
            d[k] = None if v is None else round(float(v), 3)
        out.append(d)
    return out


def runtimes(conn: Connection, layer_id: int, limit: int) -> list[float]:
    """Run times (seconds) of the layer's latest `limit` succeeded attempts, oldest first."""
    q = (select((Attempt.stopped_at - Attempt.started_at).label("t"))
         .select_from(Frame).join(Attempt, Attempt.frame_id == Frame.id)
         .where(Frame.layer_id == layer_id, Attempt.state == DONE,
                Attempt.stopped_at.is_not(None))
         .order_by(Attempt.stopped_at.desc()).limit(limit))
    return [round(float(t), 3) for t in reversed(conn.execute(q).scalars().all())]
