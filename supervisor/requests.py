"""The client request types, each declared once next to its handler: who may make it, what
it is called in a refusal, and whether it only reads the database.

    @request("job_control", role=ARTIST, what="controlling jobs", jobs="job_ids", own=True,
             actions={"priority": (WRANGLER, "Changing priority")})
    def _job_control(cx: Context, req: Request) -> p.Body | None: ...

A handler takes the context and the request and returns the reply body, or None when the reply
comes later (a log, once its worker sends it).  It refuses with `RequestError`.  A `read`
request only reads the database (never the loop's live state nor the outbox), so the loop may
serve it on its reader thread.  The modules holding handlers register them when imported;
supervisor.clientapi imports them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.roles import RANK
from supervisor.store import control, work
from supervisor.store.errors import ControlError


class RequestError(Exception):
    """A request refused: answered with p.Error(code, message, field)."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass(frozen=True)
class Rule:
    """The least role a request type needs.  `jobs` names the body field holding the job (an
    int) or jobs (a list) the request reads or acts on: hidden from non-members of a restricted
    project.  With `own`, an artist must own those jobs.  `actions` overrides `least`/`what`
    for some values of the body's `action`."""

    least: str
    what: str
    jobs: str | None = None
    own: bool = False
    actions: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One decoded client request, as a handler sees it."""

    body: Any                   # the typed body (a p.Body subclass)
    user: str                   # who asks (the envelope's identity slot)
    route: list[bytes]          # the client's ROUTER route, to answer later
    request_id: int
    size: int = 0               # bytes of the message it came in


Handler = Callable[[Context, Request], p.Body | None]


@dataclass(frozen=True)
class Declaration:
    name: str
    handler: Handler
    rule: Rule
    read: bool                  # only reads the database: may be served off the loop
    # Long database work touching nothing of the loop's (archiving): off the loop too, and
    # still audited (a read is not).
    off_loop: bool = False


# Every declared request type.  Filled by the @request decorators as their modules are
# imported; a test checks it names exactly the protocol's client request types.
DECLARED: dict[str, Declaration] = {}


def request(name: str, *, role: str, what: str, read: bool = False, jobs: str | None = None,
            own: bool = False, actions: dict[str, tuple[str, str]] | None = None,
            off_loop: bool = False) -> Callable[[Handler], Handler]:
    """Declare the handler of request type `name`: the least `role` it needs, `what` a
    refusal calls it ("submitting jobs"), the body field naming its job(s) for project
    visibility, whether an artist must `own` them, per-action overrides of role and `what`,
    whether it only `read`s the database, and whether it runs `off_loop` though it writes
    (its work touches nothing the loop holds)."""
    rule = Rule(role, what, jobs, own, dict(actions or {}))
    for least in [role] + [least for least, _ in rule.actions.values()]:
        if least not in RANK:
            raise ValueError(f"request {name!r}: unknown role {least!r}")

    def declare(handler: Handler) -> Handler:
        if name in DECLARED:
            raise ValueError(f"request {name!r} is declared twice")
        DECLARED[name] = Declaration(name, handler, rule, read, off_loop)
        return handler
    return declare


def control_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), with a store's refusal (ControlError) answered as a refused request of the
    same code (invalid, not_found)."""
    try:
        return fn(*args)
    except ControlError as exc:
        raise RequestError(exc.code, str(exc), exc.field) from None


def apply_control(cx: Any, fn: Callable[[Any, Any], None]) -> Any:
    """Run one control command in a transaction: fn(conn, outcome) changes the database, then
    counters settle; its kills, changed rows, a dispatch pass and settings to reload are
    effects staged with it (sent once it committed).  A store's refusal is answered as a
    refused request.  Returns the outcome."""
    outcome = control.Outcome()
    now = cx.clock()
    try:
        with cx.begin() as (conn, out):
            fn(conn, outcome)
            work.settle(conn, outcome.deltas, outcome.touched, now)
            cx.kill(out, outcome.kills)
            out.note(outcome.touched)
            out.wake()
            if outcome.reload:
                out.tell_farm(reload=outcome.reload)
    except ControlError as exc:
        raise RequestError(exc.code, str(exc), exc.field) from None
    return outcome
