"""The farm-wide counts a dispatch pass spends: slots in use per job and project, named limits
and who holds them, and taking them in turn with other supervisors sharing a PostgreSQL
database (hold_counts)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (ARRAY, Connection, Text, any_, bindparam, cast, func,
                        literal_column, select, text)

from cuefarm.states import AttemptState
from supervisor.store import direct
from supervisor.store.models import Attempt, Job, Layer, LayerLimit, Limit

A = AttemptState
# The layers with frames running: a partial index holds them (literal 0, so both databases
# see the index's own predicate).
BUSY = Layer.running > literal_column("0")


_SLOTS_IN_USE = (select(Layer.job_id, Job.project_id,
                        func.sum(Layer.slots_running).label("slots"))
                 .join(Job, Job.id == Layer.job_id).where(BUSY)
                 .group_by(Layer.job_id, Job.project_id))


def slots_in_use(conn: Connection) -> tuple[dict[int, int], dict[int, int]]:
    """Slots running per job and per project (from the per-layer counters)."""
    per_job: dict[int, int] = {}
    per_project: dict[int, int] = defaultdict(int)
    for job_id, project_id, n in direct.execute(conn, _SLOTS_IN_USE):
        per_job[job_id] = int(n)
        per_project[project_id] += int(n)
    return per_job, dict(per_project)


# Hosts holding node-locked limits: those running frames of the busy layers needing them, each
# layer's found through the partial index of running attempts (whatever the planner thinks of
# a young table's statistics).
_LIMIT_HOLDERS_PG = text(
    "SELECT DISTINCT layer_limit.limit_id, a.host_id"
    " FROM layer_limit JOIN layer ON layer.id = layer_limit.layer_id CROSS JOIN LATERAL ("
    " SELECT attempt.host_id FROM attempt WHERE attempt.layer_id = layer.id"
    " AND attempt.state = 'RUNNING') AS a"
    " WHERE layer.running > 0 AND layer_limit.limit_id = ANY(:ids)")
_LIMIT_HOLDERS = (select(LayerLimit.limit_id, Attempt.host_id).distinct()
                  .join(Layer, Layer.id == LayerLimit.layer_id)
                  .join(Attempt, Attempt.layer_id == LayerLimit.layer_id)
                  .where(BUSY, Attempt.state == A.RUNNING.value,
                         LayerLimit.limit_id.in_(bindparam("ids", expanding=True))))
# Each named limit with the frames holding it: the running counters of the busy layers that
# need it (one statement).
def _limits(named):
    return (select(Limit.id, Limit.name, Limit.max, Limit.per_host,
                   select(func.coalesce(func.sum(Layer.running), 0))
                   .select_from(LayerLimit).join(Layer, Layer.id == LayerLimit.layer_id)
                   .where(BUSY, LayerLimit.limit_id == Limit.id)
                   .scalar_subquery().label("frames"))
            .where(named))


_LIMITS = _limits(Limit.name.in_(bindparam("names", expanding=True)))
# PostgreSQL: the names as one array, so the statement has one shape (prepared once).
_LIMITS_PG = _limits(Limit.name == any_(cast(bindparam("names"), ARRAY(Text))))


# Farm-wide counts a pass spends are taken in turn by supervisors sharing a PostgreSQL
# database, through transaction-scoped advisory locks that a pass only tries: it never waits
# for one (so they cannot close a cycle with the row locks of layers and frames), and what it
# could not take (another supervisor's pass spends it now) it leaves to its next pass.  Keys:
# a limit's id, a capped job's id or a capped project's id in a range of its own (farm duties
# take session locks on hashtext keys, within 32 bits).
_LIMIT_KEY, _JOB_KEY, _PROJECT_KEY = 1 << 40, 2 << 40, 3 << 40
_TRY_HOLD_PG = text(
    "SELECT limits.name, CAST(NULL AS bigint), pg_try_advisory_xact_lock(:lk + limits.id)"
    " FROM limits WHERE limits.name = ANY(CAST(:names AS text[]))"
    " UNION ALL SELECT NULL, k, pg_try_advisory_xact_lock(k)"
    " FROM unnest(CAST(:keys AS bigint[])) AS k")


@dataclass
class Held:
    """What a pass could take for itself of the farm-wide counts it asked for."""

    limits: set[str]        # named limits (a name with no limit is counted as held)
    jobs: set[int]          # capped jobs
    projects: set[int]      # capped projects

    def allows(self, layer: dict[str, Any], limits: list[str]) -> bool:
        """Whether the pass may spend what this candidate layer needs."""
        return ((layer["job_max_slots"] is None or layer["job_id"] in self.jobs)
                and (layer["project_max_slots"] is None
                     or layer["project_id"] in self.projects)
                and all(n in self.limits for n in limits))


def hold_counts(conn: Connection, limits: set[str], jobs: set[int],
                projects: set[int]) -> Held:
    """Take, for this transaction, the named limits and the slot caps of these jobs and
    projects: while held, no pass of another supervisor spends them, and counts read after
    this (statements of their own) include everything committed by the last one that did.
    Those another pass holds now are left out.  SQLite: one supervisor, its transactions
    serialized: all of them."""
    if conn.dialect.name != "postgresql" or not (limits or jobs or projects):
        return Held(set(limits), set(jobs), set(projects))
    keys = sorted([_JOB_KEY + j for j in jobs] + [_PROJECT_KEY + p for p in projects])
    found: dict[str, bool] = {}
    held_keys: set[int] = set()
    for name, key, got in direct.execute(conn, _TRY_HOLD_PG, {"lk": _LIMIT_KEY,
                                                              "names": sorted(limits),
                                                              "keys": keys}):
        if name is not None:
            found[name] = got
        elif got:
            held_keys.add(key)
    return Held({n for n in limits if found.get(n, True)},
                {j for j in jobs if _JOB_KEY + j in held_keys},
                {p for p in projects if _PROJECT_KEY + p in held_keys})


def limit_usage(conn: Connection, names: set[str],
                hosts: list[int] | None = None) -> dict[str, dict[str, Any]]:
    """For each named limit: max, per_host, frames (or, per host, hosts) in use, and which
    hosts hold it.  A frame holds the limits its layer lists now: a limit added to a running
    layer counts its running frames at once.

    Without `hosts`: exact counts, and every holder.  A dispatch pass gives the hosts it can
    place frames on: holders are looked up among those only, and a node-locked limit whose
    frames running plus those hosts stay within its maximum is not looked up at all (no more
    hosts than frames hold it, so the pass cannot reach the maximum): its `used` is then that
    bound, its holders unknown (empty)."""
    if not names:
        return {}
    # Several supervisors: a pass spends only the limits it holds (hold_counts, before this)
    out = {r.name: {"id": r.id, "max": r.max, "per_host": r.per_host, "used": int(r.frames),
                    "hosts": set()}
           for r in direct.execute(conn, _LIMITS_PG if conn.dialect.name == "postgresql"
                                   else _LIMITS, {"names": sorted(names)})}
    by_id = {v["id"]: v for v in out.values()}
    exact = [i for i, v in by_id.items() if v["per_host"]
             and (hosts is None or v["used"] + len(hosts) > v["max"])]
    if not exact:
        return out
    for limit_id in exact:
        by_id[limit_id]["used"] = 0
    wanted = None if hosts is None else set(hosts)
    rows = direct.execute(conn, _LIMIT_HOLDERS_PG if conn.dialect.name == "postgresql"
                        else _LIMIT_HOLDERS, {"ids": exact})
    for limit_id, host_id in rows:
        entry = by_id[limit_id]
        entry["used"] += 1
        if wanted is None or host_id in wanted:
            entry["hosts"].add(host_id)
    return out
