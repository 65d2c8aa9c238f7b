"""Which supervisors serve the farm: each writes a row of its own every BEAT seconds (what it
serves, how busy it is), and `list_supervisors` answers with the live ones, through any of
them.  A supervisor that stops says so; one that dies drops off the list after a few beats."""

from __future__ import annotations

import socket
from typing import Any, Callable

import cuefarm
from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.metrics import farm_slots
from supervisor.requests import Request, request
from supervisor.roles import ARTIST
from supervisor.store import supervisors as store

BEAT = 2.0
ALIVE = 3 * BEAT + 1.0       # seconds since its last row that a supervisor counts as alive


def address(cx: Context) -> str:
    """Where clients reach this supervisor."""
    bind = cx.cfg.bind
    host = socket.gethostname() if bind in ("*", "", "0.0.0.0", "::") else bind
    return f"{host}:{cx.cfg.port}"[:128]


def row(cx: Context, started_at: float) -> dict[str, Any]:
    slots = farm_slots(cx.live.registry)
    latest = cx.billing.sampler.latest if cx.billing is not None else {}
    return {"owner": cx.owner, "run_id": cx.id, "address": address(cx),
            "version": cuefarm.__version__[:32], "started_at": started_at,
            "last_seen": cx.clock(),
            "hosts": sum(1 for w in cx.live.registry.by_id.values() if w.identity is not None),
            "slots_used": int(slots["slots.used"]), "slots_total": int(slots["slots.total"]),
            "dispatched": int(cx.live.counters["dispatched"]),
            "cpu_percent": float(latest.get("process.cpu", 0.0)),
            "rss_mb": float(latest.get("process.rss", 0.0)) / (1 << 20)}


def beats(started_at: float) -> Callable[[Context], Callable[[], None]]:
    """The periodic task: this supervisor's row, written off the loop."""
    def beat(cx: Context) -> Callable[[], None]:
        mine, engine = row(cx, started_at), cx.engine

        def write() -> None:
            with engine.begin() as conn:
                store.beat(conn, mine)
        return write
    return beat


def stopped(cx: Context) -> None:
    """This supervisor stops: off the list at once."""
    with cx.engine.begin() as conn:
        store.gone(conn, cx.owner)


@request("list_supervisors", role=ARTIST, what="listing supervisors", read=True)
def _list_supervisors(cx: Context, req: Request) -> p.Body:
    rows = cx.read(lambda c: store.alive(c, cx.clock() - ALIVE))
    for r in rows:
        r["this"] = r["owner"] == cx.owner
    return p.Rows(rows)
