"""The audit trail: every action asked of the supervisor (not the reads), who asked, from
where, on which jobs or hosts, and how it went; written once per loop turn, queryable with
`cuefarm audit`, kept `audit_days` (a farm duty prunes older entries)."""

from __future__ import annotations

import itertools
import logging
import math
from typing import Any, Callable

import msgspec

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ARTIST, RANK, WRANGLER
from supervisor.store import audit as store
from supervisor.store.models import storable

log = logging.getLogger(__name__)

# Requests that change nothing although they are not served off the loop.
NOT_AUDITED = frozenset({"ping", "whoami", "metrics", "licences", "licence_reports", "usage",
                         "why", "next_for_host", "check_path", "list_audit"})
PENDING_MAX = 100_000       # entries waiting for the database before the oldest are dropped
OBJECT_FIELDS = (("job_id", "job"), ("job_ids", "job"), ("host", "host"), ("hosts", "host"),
                 ("names", "host"), ("name", None))
REFUSALS = frozenset({"forbidden", "invalid", "not_found", "busy", "conflict", "unknown_type"})


def audited(type_name: str, read: bool) -> bool:
    return (not read and type_name not in NOT_AUDITED
            and not type_name.startswith(("list_", "get_")))


def _fields(body: msgspec.Struct) -> dict[str, Any]:
    """A struct's fields as msgspec.to_builtins gives them (unset ones left out, and those at
    their default when the struct omits them), without converting their values."""
    omit = body.__struct_config__.omit_defaults
    out = {}
    for f in msgspec.structs.fields(body):
        value = getattr(body, f.name)
        if value is msgspec.UNSET:
            continue
        if omit and ((f.default is not msgspec.NODEFAULT and value == f.default) or
                     (f.default_factory is not msgspec.NODEFAULT
                      and value == f.default_factory())):
            continue
        out[f.name] = value
    return out


def _short(value: Any, depth: int = 0) -> Any:
    """The request as stored: long strings and lists cut, nothing deeper than a few levels.
    Only what is kept is looked at: a request of millions of items costs no more than one
    of fifty."""
    if isinstance(value, msgspec.Struct):
        value = _fields(value)
    if isinstance(value, str):
        return storable(value if len(value) <= 200 else value[:200] + "…")
    if isinstance(value, (list, tuple)):
        items = [_short(v, depth + 1) for v in value[:50]]
        return items + [f"… {len(value) - 50} more"] if len(value) > 50 else items
    if isinstance(value, dict):
        if depth > 3:
            return "…"
        return {storable(str(k)[:100]): _short(v, depth + 1)
                for k, v in itertools.islice(value.items(), 50)}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _short(msgspec.to_builtins(value), depth)      # bytes, enums...


def objects_of(type_name: str, body: Any, reply: Any) -> str:
    """"job 12, host w1": the jobs and hosts a request names (a submit: the jobs it made)."""
    out: list[str] = []
    if type_name == "submit" and isinstance(reply, p.JobIds):
        out += [f"job {i}" for i in reply.job_ids]
    for attr, kind in OBJECT_FIELDS:
        value = getattr(body, attr, None)
        if value is None or (attr == "name" and type_name not in ("host_slots", "host_tags")):
            continue
        kind = kind or "host"
        for v in value if isinstance(value, list) else [value]:
            out.append(f"{kind} {v}")
    return ", ".join(out)[:2000]


def _detail(type_name: str, body: Any) -> Any:
    """What the trail keeps of a request's body."""
    if type_name != "submit":
        return _short(body)
    jobs = body.jobs if isinstance(body.jobs, list) else []
    return {"jobs": [{"name": str(_short(j.get("name")))[:200],
                      "project": str(_short(j.get("project", "")))[:200],
                      "layers": len(layers) if isinstance(layers := j.get("layers"), list)
                      else 0}
                     for j in jobs[:50] if isinstance(j, dict)],
            "submission": body.submission}


def note(cx: Context, type_name: str, body: Any, user: str, route: list[bytes],
         reply: Any) -> None:
    """Keep one entry for the next write (the loop writes them every turn)."""
    try:
        detail = _detail(type_name, body)
    except Exception:  # noqa: BLE001 - a bug here must not keep the reply from going out
        log.exception("could not note the details of a %s request", type_name)
        detail = "(not readable)"
    if isinstance(reply, p.Error):
        outcome = "refused" if reply.code in REFUSALS else "failed"
        message = f"{reply.code}: {reply.message}"
    else:
        outcome, message = "ok", ""
    peer = route[0] if route else b""
    pending = cx.live.audit
    if len(pending) >= PENDING_MAX:
        del pending[:len(pending) // 10]
        log.error("the audit trail could not be written for a while; oldest entries dropped")
    # Text as the databases take it: one entry PostgreSQL refused failed the write of all
    # the others, turn after turn.
    pending.append({"at": cx.clock(), "user": storable(user[:128]),
                    "address": cx.live.client_addresses.get(peer, "")[:128],
                    "action": storable(type_name[:64]),
                    "objects": storable(objects_of(type_name, body, reply)),
                    "detail": detail, "outcome": outcome, "message": storable(message[:1000])})


def flush(cx: Context) -> None:
    """Write the entries kept since the last turn, in one transaction."""
    pending = cx.live.audit
    if not pending:
        return
    entries, cx.live.audit = pending, []
    try:
        with cx.engine.begin() as conn:
            store.record(conn, entries)
    except Exception:   # noqa: BLE001 - kept for the next turn; the farm goes on
        log.exception("could not write %d audit entries; trying again", len(entries))
        cx.live.audit = entries + cx.live.audit


def forget_old(cx: Context) -> Callable[[], None] | None:
    """The retention duty: entries older than audit_days go."""
    days = cx.cfg.audit_days
    if days <= 0:
        return None
    before, engine = cx.clock() - days * 86400.0, cx.engine

    def work() -> None:
        with engine.begin() as conn:
            n = store.forget(conn, before)
        if n:
            log.info("audit: %d entries older than %g days removed", n, days)
    return work


@request("list_audit", role=ARTIST, what="reading the audit trail", read=True)
def _list_audit(cx: Context, req: Request) -> p.Body:
    body: p.ListAudit = req.body
    user = body.user
    if RANK[cx.policy.role(req.user)] < RANK[WRANGLER]:
        if user not in (None, req.user):
            raise RequestError("forbidden", "artists see only their own actions in the audit "
                               "trail", "user")
        user = req.user
    for name in ("since", "until"):
        v = getattr(body, name)
        if v is not None and not math.isfinite(v):
            raise RequestError("invalid", f"{name} must be a finite time", name)
    if not 1 <= body.limit <= store.MAX_ROWS:
        raise RequestError("invalid", f"limit is 1 to {store.MAX_ROWS}", "limit")
    return p.Rows(cx.read(lambda c: store.query(c, user, body.since, body.until, body.action,
                                                body.job_id, body.host, body.limit)))
