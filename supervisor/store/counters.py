"""Frame state changes applied set-based, with the per-layer counters kept in step."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text, update

from cuefarm.states import COMPLETE_STATES, FrameState
from supervisor.store import direct
from supervisor.store.models import Frame, Layer

COUNTER = {FrameState.WAITING: "waiting", FrameState.DEPEND: "depend",
           FrameState.RUNNING: "running", FrameState.SUCCEEDED: "succeeded",
           FrameState.DEAD: "dead", FrameState.EATEN: "eaten"}
COUNTER_NAMES = tuple(COUNTER.values())
DELTA_COLUMNS = COUNTER_NAMES + ("slots_running",)


def update_from_arrays(conn: Connection, table: str, key: tuple[str, str, str],
                       columns: dict[str, tuple[str, str]], rows: list[dict[str, Any]],
                       also: str = "", params: dict[str, Any] | None = None,
                       returning: str = "", defer: "Deltas | None" = None,
                       ahead: list[str] | None = None):
    """PostgreSQL: one UPDATE over unnested arrays, whatever the number of rows, where an
    executemany has the server run one statement per row.

    `key` is (field of `rows`, its SQL type, the table's key column); `columns` maps each
    other field to (SQL type, SET expression using t.<field>); `also` adds SET expressions
    with bound `params`; `returning`, columns of the updated rows to return.  Each key must
    appear once in `rows`.  With `defer`, the UPDATE is not sent now but ahead of that
    Deltas' write (see Deltas.defer); `ahead` are statements rendered by `direct.render`
    (psycopg2) to send before this one, in the same round trip."""
    field, typ, col = key
    names = [field, *columns]
    types = [typ, *(t for t, _ in columns.values())]
    unnest = ", ".join(f"CAST(:{f} AS {t}[])" for f, t in zip(names, types))
    sets = ", ".join([*(expr for _, expr in columns.values()), *([also] if also else [])])
    sql = (f"UPDATE {table} SET {sets} FROM unnest({unnest}) AS t({', '.join(names)})"
           f" WHERE {table}.{col} = t.{field}" + (f" RETURNING {returning}" if returning else ""))
    stmt = _STATEMENTS.get(sql)
    if stmt is None:        # a handful of shapes, each parsed once
        stmt = _STATEMENTS[sql] = text(sql)
    values = {**{f: [r[f] for r in rows] for f in names}, **(params or {})}
    if defer is not None:
        defer.defer(conn, stmt, values)
        return None
    if ahead:       # one query string, one round trip: the rows are the last statement's
        return direct.run(conn, "".join(f"{a};\n" for a in ahead)
                          + direct.render(conn, stmt, values))
    return direct.execute(conn, stmt, values)


_STATEMENTS: dict[str, Any] = {}


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
    completed (SUCCEEDED or EATEN), whose dependents may now run.

    PostgreSQL: writes whose results nobody reads (frame and attempt rows) may be deferred to
    go ahead of the counter write, in the same round trip; they still run first, in order, in
    the same transaction.  Whoever defers must see the deltas written (settle() does) or
    flushed before anything reads what they change."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.by_layer: dict[int, dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(DELTA_COLUMNS, 0))
        self.completed: list[int] = []
        self.completed_layers: list[int] = []   # the layer of each frame in `completed`
        self.died: list[tuple[int, int, int]] = []  # frames moved to DEAD: (frame, layer, job)
        self.layer_jobs: dict[int, int] = {}     # the job of each layer a move was noted for

    def slots(self, layer_id: int, n: int) -> None:
        self.by_layer[layer_id]["slots_running"] += n

    def busy(self) -> dict[int, int]:
        """The layers these deltas leave with frames running whatever they had before (more
        started than ended), with their jobs: {layer id: job id}."""
        return {lid: self.layer_jobs[lid] for lid, d in self.by_layer.items()
                if d["running"] > 0 and lid in self.layer_jobs}

    def move(self, layer_id: int, old: FrameState | None, new: FrameState | None, n: int = 1) -> None:
        d = self.by_layer[layer_id]
        # (A state's name is its value: COUNTER takes the plain string as well.)
        if old is not None:
            d[COUNTER[old]] -= n
        if new is not None:
            d[COUNTER[new]] += n

    def defer(self, conn: Connection, stmt, params: dict[str, Any]) -> None:
        """PostgreSQL: send `stmt` (a text() statement) ahead of the next write or flush,
        rendered now exactly as the driver would send it (another driver: sent now)."""
        if conn.dialect.driver != "psycopg2":
            conn.execute(stmt, params)
            return
        self.pending.append(direct.render(conn, stmt, params))

    def flush(self, conn: Connection) -> None:
        """Send the deferred statements now (before something reads what they change)."""
        if self.pending:
            ahead, self.pending = self.pending, []
            direct.run(conn, ";\n".join(ahead))

    def write(self, conn: Connection) -> list[Any] | None:
        """Write the deferred statements and the deltas.  PostgreSQL returns each updated
        layer's counters afterwards (id, job_id, waiting, running, depend, dead), in the same
        statement; SQLite None."""
        rows = [{"lid": lid, **{f"d_{k}": v for k, v in d.items()}}
                for lid, d in self.by_layer.items() if any(d.values())]
        if not rows:
            self.flush(conn)
            return [] if conn.dialect.name == "postgresql" else None
        if conn.dialect.name == "postgresql":
            # The rows are taken in id order first: the update alone locks them in whatever
            # order its join visits them, and two supervisors' passes over the same jobs then
            # deadlock.  Same round trip.
            ahead, self.pending = self.pending, []
            lock = {"ids": sorted(r["lid"] for r in rows)}
            if conn.dialect.driver == "psycopg2":
                ahead.append(direct.render(conn, _LOCK_LAYERS_PG, lock))
            else:       # nothing was deferred (see defer): a round trip of its own
                conn.execute(_LOCK_LAYERS_PG, lock)
            return update_from_arrays(conn, "layer", ("lid", "bigint", "id"),
                                      {f"d_{k}": ("integer", f"{k} = layer.{k} + t.d_{k}")
                                       for k in DELTA_COLUMNS}, rows,
                                      returning="layer.id, layer.job_id, layer.waiting,"
                                      " layer.running, layer.depend, layer.dead",
                                      ahead=ahead)
        if direct.can_many(conn):
            direct.many_rows(conn, _ADD_DELTAS_SQLITE, [
                (r["lid"], *(r[f"d_{k}"] for k in DELTA_COLUMNS)) for r in rows])
        else:
            conn.execute(_ADD_DELTAS, rows)
        return None


_LOCK_LAYERS_PG = text("SELECT 1 FROM layer WHERE id = ANY(CAST(:ids AS bigint[]))"
                       " ORDER BY id FOR UPDATE")
# Built once, on the tables (not the mapped classes: an ORM-enabled UPDATE costs more to run).
_LAYER_T, _FRAME_T = Layer.__table__, Frame.__table__
_ADD_DELTAS = (update(_LAYER_T).where(_LAYER_T.c.id == bindparam("lid"))
               .values({k: _LAYER_T.c[k] + bindparam(f"d_{k}") for k in DELTA_COLUMNS}))
_MOVE_FRAMES = (update(_FRAME_T).where(_FRAME_T.c.id == bindparam("fid"))
                .values(state=bindparam("s"), retries=bindparam("r"), attempt=bindparam("a"),
                        host_id=bindparam("h"), kill_pending=bindparam("k"),
                        updated_at=bindparam("now")))
# SQLite: the same writes in one statement each (see direct.many_rows); each key once.
_ADD_DELTAS_SQLITE = (
    f"WITH v(lid, {', '.join(DELTA_COLUMNS)}) AS (VALUES {{values}}) UPDATE layer SET "
    + ", ".join(f"{k} = layer.{k} + v.{k}" for k in DELTA_COLUMNS)
    + " FROM v WHERE layer.id = v.lid")
_MOVE_FRAMES_SQLITE = (
    "WITH v(fid, s, r, a, h, k, u) AS (VALUES {values})"
    " UPDATE frame SET state = v.s, retries = v.r, attempt = v.a, host_id = v.h,"
    " kill_pending = v.k, updated_at = v.u FROM v WHERE frame.id = v.fid")


def apply_moves(conn: Connection, moves: list[FrameMove], now: float,
                deltas: Deltas | None = None, defer: bool = False) -> Deltas:
    """Write `moves` (frames already locked or known to be in `old`) and their counter deltas
    (with `defer`, PostgreSQL sends the frame write with the deltas': see Deltas)."""
    deltas = deltas if deltas is not None else Deltas()
    if not moves:
        return deltas
    rows = [{"fid": m.frame_id, "s": m.new.value, "r": m.retries, "a": m.attempt,
             "h": m.host_id, "k": m.kill_pending} for m in moves]
    if conn.dialect.name == "postgresql" and len({m.frame_id for m in moves}) == len(moves):
        update_from_arrays(conn, "frame", ("fid", "bigint", "id"),
                           {"s": ("text", "state = t.s"), "r": ("integer", "retries = t.r"),
                            "a": ("integer", "attempt = t.a"), "h": ("bigint", "host_id = t.h"),
                            "k": ("text", "kill_pending = t.k")}, rows,
                           "updated_at = :now", {"now": now}, defer=deltas if defer else None)
    elif direct.can_many(conn) and len({m.frame_id for m in moves}) == len(moves):
        direct.many_rows(conn, _MOVE_FRAMES_SQLITE, [
            (r["fid"], r["s"], r["r"], r["a"], r["h"], r["k"], now) for r in rows])
    else:
        for r in rows:
            r["now"] = now
        conn.execute(_MOVE_FRAMES, rows)
    for m in moves:
        deltas.move(m.layer_id, m.old, m.new)
        deltas.layer_jobs[m.layer_id] = m.job_id
        if m.new in COMPLETE_STATES:
            deltas.completed.append(m.frame_id)
            deltas.completed_layers.append(m.layer_id)
        elif m.new == FrameState.DEAD:
            deltas.died.append((m.frame_id, m.layer_id, m.job_id))
    return deltas


def recount(conn: Connection, layer_ids: list[int]) -> None:
    """Rebuild counters from the frames themselves (repair tool; not on the hot path)."""
    for lid in layer_ids:
        counts = dict.fromkeys(COUNTER_NAMES, 0)
        for state, n in conn.execute(select(Frame.state, func.count()).where(Frame.layer_id == lid)
                                     .group_by(Frame.state)):
            counts[COUNTER[FrameState(state)]] = n
        conn.execute(update(Layer).where(Layer.id == lid).values(**counts))

