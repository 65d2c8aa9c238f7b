"""Frame state changes applied set-based, with the per-layer counters kept in step."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select, update

from cuefarm.states import COMPLETE_STATES, FrameState
from supervisor.store.models import Frame, Layer

COUNTER = {FrameState.WAITING: "waiting", FrameState.DEPEND: "depend",
           FrameState.RUNNING: "running", FrameState.SUCCEEDED: "succeeded",
           FrameState.DEAD: "dead", FrameState.EATEN: "eaten"}
COUNTER_NAMES = tuple(COUNTER.values())
DELTA_COLUMNS = COUNTER_NAMES + ("slots_running",)


@dataclass
class FrameMove:
    """One frame leaving `old` for `new`; the other fields are the frame's values afterwards."""

    frame_id: int
    layer_id: int
    job_id: int
    old: FrameState
    new: FrameState
    retries: int
    attempt: int
    host_id: int | None = None
    kill_pending: str | None = None


class Deltas:
    """Counter changes per layer, written in one executemany; also notes the frames that
    completed (SUCCEEDED or EATEN), whose dependents may now run."""

    def __init__(self) -> None:
        self.by_layer: dict[int, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(DELTA_COLUMNS, 0))
        self.completed: list[int] = []

    def slots(self, layer_id: int, n: int) -> None:
        self.by_layer[layer_id]["slots_running"] += n

    def move(self, layer_id: int, old: FrameState | None, new: FrameState | None, n: int = 1) -> None:
        d = self.by_layer[layer_id]
        if old is not None:
            d[COUNTER[FrameState(old)]] -= n
        if new is not None:
            d[COUNTER[FrameState(new)]] += n

    def write(self, conn: Connection) -> None:
        rows = [{"lid": lid, **{f"d_{k}": v for k, v in d.items()}}
                for lid, d in self.by_layer.items() if any(d.values())]
        if not rows:
            return
        values = {k: getattr(Layer, k) + bindparam(f"d_{k}") for k in DELTA_COLUMNS}
        conn.execute(update(Layer).where(Layer.id == bindparam("lid")).values(**values)
                     .execution_options(synchronize_session=False), rows)


def apply_moves(conn: Connection, moves: list[FrameMove], now: float,
                deltas: Deltas | None = None) -> Deltas:
    """Write `moves` (frames already locked or known to be in `old`) and their counter deltas."""
    deltas = deltas if deltas is not None else Deltas()
    if not moves:
        return deltas
    stmt = (update(Frame).where(Frame.id == bindparam("fid"))
            .values(state=bindparam("s"), retries=bindparam("r"), attempt=bindparam("a"),
                    host_id=bindparam("h"), kill_pending=bindparam("k"), updated_at=now)
            .execution_options(synchronize_session=False))
    conn.execute(stmt, [{"fid": m.frame_id, "s": m.new.value, "r": m.retries, "a": m.attempt,
                         "h": m.host_id, "k": m.kill_pending} for m in moves])
    for m in moves:
        deltas.move(m.layer_id, m.old, m.new)
        if m.new in COMPLETE_STATES:
            deltas.completed.append(m.frame_id)
    return deltas


def recount(conn: Connection, layer_ids: list[int]) -> None:
    """Rebuild counters from the frames themselves (repair tool; not on the hot path)."""
    for lid in layer_ids:
        counts = dict.fromkeys(COUNTER_NAMES, 0)
        for state, n in conn.execute(select(Frame.state, func.count()).where(Frame.layer_id == lid)
                                     .group_by(Frame.state)):
            counts[COUNTER[FrameState(state)]] = n
        conn.execute(update(Layer).where(Layer.id == lid).values(**counts))

