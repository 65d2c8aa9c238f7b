"""Client requests served in process: the real client API, store and dispatcher on SQLite, a
Context built by hand, and an outbox the test reads instead of a loop's sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from cuefarm import protocol as p
from cuefarm.config import SupervisorConfig
from supervisor import clientapi, dispatch
from supervisor.context import Context
from supervisor.intake import Intake
from supervisor.live import Live, default_admission
from supervisor.outbox import Outbox
from supervisor.requests import DECLARED, Declaration, Request
from supervisor.roles import Policy
from supervisor.store import work
from supervisor.store.engine import make_engine, migrate
from supervisor.store.models import Host

ROUTE = [b"client-1"]
WORKER = b"worker-w1"


@pytest.fixture
def cx(sqlite_url):
    """A context on a fresh SQLite database: boss is an admin, wendy a wrangler, everyone else
    an artist."""
    cfg = SupervisorConfig()
    engine = make_engine(sqlite_url)
    migrate(engine)
    now = [1_000_000.0]
    context = Context(cfg=cfg, engine=engine, clock=lambda: now[0], mono=lambda: now[0],
                      live=Live(work.FailurePolicy(), default_admission(cfg)), intake=Intake(),
                      out=Outbox(), id="run-1", owner="svc",
                      policy=Policy(frozenset({"boss"}), frozenset({"wendy"}), "svc"))
    try:
        yield context
    finally:
        engine.dispose()


def message(type_name: str, body: p.Body, user: str, rid: int = 7) -> list[bytes]:
    return ROUTE + [p.encode(body, rid, user, type_name)]


def ask(cx: Context, type_name: str, body: p.Body, user: str = "boss") -> p.Body | None:
    """handle() one request; the reply the client gets (reads are served at once), taken out
    of the outbox."""
    later: list[Callable[[], tuple]] = []
    clientapi.handle(cx, message(type_name, body, user), later.append)
    if later:
        route, rid, reply = later[0]()
        assert (route, rid) == (ROUTE, 7)
        return reply
    replies, cx.out.replies = cx.out.replies, []     # the other effects stay for the test
    assert len(replies) <= 1
    return replies[0][2] if replies else None


def job(name: str, **layer) -> dict:
    return {"name": name, "project": "demo",
            "layers": [{"name": "render", "command": ["true"], "range": "1-3", **layer}]}


def connect_worker(cx: Context, name: str = "w1", slots: int = 4):
    """A host row and a connected worker in the live registry (as registration leaves them)."""
    now = cx.clock()
    with cx.engine.begin() as conn:
        host_id = conn.execute(insert(Host).values(
            name=name, hostname=name, os="linux", cores=slots, memory_mb=16_000,
            slots_configured=slots, state="UP", last_seen=now, registered_at=now)
            .returning(Host.id)).scalar_one()
    w = cx.live.registry.get_or_add(host_id, name)
    w.slots = w.offered = w.cores = slots
    w.memory_mb, w.os = 16_000, "linux"
    cx.live.registry.connect(w, WORKER, cx.mono())
    return w


def test_reads_go_off_the_loop_and_everything_else_replies_on_it(cx):
    later: list[Callable[[], tuple]] = []
    clientapi.handle(cx, message("list_jobs", p.ListJobs(), "alice"), later.append)
    assert len(later) == 1 and not cx.out      # nothing answered on the loop
    assert later[0]() == (ROUTE, 7, p.Rows([]))

    clientapi.handle(cx, message("ping", p.Ping(), "alice"), later.append)
    assert len(later) == 1
    [(route, rid, pong)] = cx.out.take().replies
    assert (route, rid) == (ROUTE, 7) and isinstance(pong, p.Pong)
    assert pong.supervisor_id == "run-1" and pong.event_seq == cx.live.event_seq


def test_bad_messages_are_answered_and_counted(cx):
    clientapi.handle(cx, [b"only one frame"], lambda work: None)
    assert cx.live.errors["malformed"] == 1 and not cx.out
    clientapi.handle(cx, ROUTE + [b"\x93garbage"], lambda work: None)
    [(route, _, error)] = cx.out.take().replies
    assert route == ROUTE and isinstance(error, p.Error) and error.code == "malformed"


def test_refusals_keep_their_words(cx):
    err = ask(cx, "set_limit", p.SetLimit("arnold", 4), "alice")
    assert err == p.Error("forbidden", "Setting a limit is for wranglers; you are alice (artist)")
    assert cx.live.errors["forbidden"] == 1
    err = ask(cx, "job_control", p.JobControl("priority", [1], 90), "alice")
    assert err.message == "Changing priority is for wranglers; you are alice (artist)"
    assert ask(cx, "whoami", p.WhoAmI(), "wendy") == p.Row(
        {"user": "wendy", "role": "wrangler", "open": False, "keys": False,
         "insecure": False})
    err = ask(cx, "get_job", p.JobRef(99), "alice")
    assert err == p.Error("not_found", "no job with id 99", "job_id")


def test_a_type_nobody_declared_is_unknown(cx, monkeypatch):
    monkeypatch.delitem(DECLARED, "metrics")
    err = ask(cx, "metrics", p.GetMetrics(), "boss")
    assert err == p.Error("unknown_type", "unknown message type 'metrics'")
    assert cx.live.errors["unknown_type"] == 1
    # access.check still refuses it to anyone but admins
    err = clientapi.access.check(cx, "metrics", p.GetMetrics(), "wendy")
    assert err.message == "This request is for admins; you are wendy (wrangler)"


def test_effects_reach_the_loop_only_when_their_transaction_commits(cx):
    [job_id] = ask(cx, "submit", p.Submit([job("a")]), "alice").job_ids
    # handle() took the reply; the note and the wake stayed in the outbox
    assert cx.out.dispatch and cx.out.touched.jobs == {job_id}
    cx.out.take()
    err = ask(cx, "submit", p.Submit([job("ok"), job("b", depends_on=[{"job": 999}])]), "alice")
    assert err.code == "invalid" and err.field == "jobs[1].layers[0].depends_on[0]"
    assert not cx.out
    assert [j["id"] for j in ask(cx, "list_jobs", p.ListJobs(), "alice").rows] == [job_id]
    assert ask(cx, "job_control", p.JobControl("pause", [job_id]), "alice") == p.Done(1)
    assert cx.out.dispatch and job_id in cx.out.touched.jobs


def test_logs_kills_and_a_ban_reach_the_worker_in_order(cx):
    w = connect_worker(cx)
    [job_id] = ask(cx, "submit", p.Submit([job("a", range="1")]), "alice").job_ids
    assert dispatch.run_pass(cx) == 1
    [(identity, launch)] = cx.out.take().messages
    assert identity == WORKER and isinstance(launch, p.Launch)

    assert ask(cx, "get_log", p.GetLog(job_id, "render", 1), "alice") is None
    [(identity, log_request)] = cx.out.take().messages
    assert identity == WORKER and isinstance(log_request, p.LogRequest)
    assert log_request.attempt_id == launch.attempt_id
    assert cx.live.logs.pending[log_request.token][:2] == (ROUTE, 7)

    err = ask(cx, "admission_control", p.AdmissionControl("ban", ["w1"], "stolen"), "wendy")
    assert err.code == "forbidden" and not cx.out
    assert ask(cx, "admission_control", p.AdmissionControl("ban", ["w1"], "stolen")) == p.Done(1)
    out = cx.out.take()
    # The purge's kill goes to the worker before it is refused and disconnected.
    assert [(i, type(b)) for i, b in out.messages] == [(WORKER, p.Kill), (WORKER, p.Refused)]
    assert out.messages[0][1].attempt_ids == [launch.attempt_id]
    assert out.messages[1][1].reason == "w1 is banned from this farm (stolen)"
    assert out.dispatch
    assert w.identity is None and w.banned and not w.running

    err = ask(cx, "get_log", p.GetLog(job_id, "render", 1), "alice")
    assert err.code == "unavailable" and err.message.startswith("host w1 is not connected")


def test_a_read_is_asked_again_once_on_a_fresh_connection(cx, monkeypatch):
    calls = []

    def flaky(cx, req: Request):
        calls.append(req.user)
        if len(calls) == 1:
            raise DBAPIError("SELECT 1", {}, Exception("server closed the connection"),
                             connection_invalidated=True)
        return p.Rows([{"name": "arnold"}])
    monkeypatch.setitem(DECLARED, "list_limits",
                        Declaration("list_limits", flaky, DECLARED["list_limits"].rule, True))
    assert ask(cx, "list_limits", p.ListLimits(), "alice") == p.Rows([{"name": "arnold"}])
    assert calls == ["alice", "alice"]

    calls.clear()
    monkeypatch.setitem(DECLARED, "list_limits",
                        Declaration("list_limits", flaky, DECLARED["list_limits"].rule, False))
    err = ask(cx, "list_limits", p.ListLimits(), "alice")
    assert err == p.Error("database", "database error: DBAPIError") and calls == ["alice"]
