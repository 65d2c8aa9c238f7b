"""The hugest submits on PostgreSQL, checked and stored by a process of their own.

Checking a million frames and making them into COPY rows is seconds of Python.  On the
supervisor's submit thread (supervisor.bigsubmit) that work shares the GIL with the loop:
each statement of a loop turn waits to get it back, and turns of 5 ms took 50-200 ms while
such a job was stored.  A submit of CHILD_FRAMES frames or more on PostgreSQL is therefore
checked and stored by a child process (`python -m supervisor.submitproc`) exactly as the
thread would (bigsubmit.store: one transaction, the same checks, refusals and submission
ids); the submit thread waits for its answer without holding the GIL.

The child reads its order (pickled) on stdin and writes its answer on stdout; it logs to the
supervisor's stderr.  It runs at the submit thread's lower CPU priority, leaves with its memory
once it has answered, and dies with the supervisor: a crash while it stores, or a stop that
does not wait for it, undoes its transaction, so a submit never answered is never stored.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from cuefarm import protocol as p
from cuefarm.config import SupervisorConfig
from supervisor import access, bigsubmit, clientapi
from supervisor.context import Context
from supervisor.outbox import Outbox
from supervisor.requests import RequestError
from supervisor.roles import Policy
from supervisor.store.engine import make_engine

log = logging.getLogger("supervisor.submitproc")     # also when run as __main__
PARENT_WATCH = 0.2     # seconds between the child's looks at whether the supervisor still runs
# A stop is the supervisor's to handle: it waits for the submit (bigsubmit: SUBMIT_GRACE) and
# answers it.  systemd signals every process of the service, a terminal's Ctrl-C the whole
# foreground group: the child ignores these (it starts with them blocked, so one sent while
# it starts cannot end it either), and goes when the supervisor goes.
STOPS = {getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
         if hasattr(signal, name)}
MASKS = hasattr(signal, "pthread_sigmask")


@dataclass
class Order:
    """What the child needs to store one submit as the supervisor would."""

    url: str                    # the database, password included (never on a command line)
    cfg: SupervisorConfig
    policy: Policy
    run_id: str
    owner: str
    default_rules: Any          # the pipeline's notification rules, or None
    body: p.Submit
    user: str


def store(cx: Context, body: p.Submit, user: str) -> tuple[list[int], Any]:
    """On the submit thread: have a child process store `user`'s submit; (job ids, what
    changed).  A refusal is raised as the RequestError the thread would have raised."""
    rules = cx.pipeline.default_rules if cx.pipeline is not None else None
    order = Order(cx.engine.url.render_as_string(hide_password=False), cx.cfg, cx.policy,
                  cx.id, cx.owner, rules, body, user)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOPS) if MASKS else None  # inherited
    try:
        child = subprocess.Popen([sys.executable, "-m", "supervisor.submitproc",
                                  str(os.getpid())],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    finally:
        if blocked is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    out, _ = child.communicate(pickle.dumps(order))
    if child.returncode != 0 or not out:
        raise RuntimeError(f"the process storing the submit ended with {child.returncode}")
    kind, *rest = pickle.loads(out)
    if kind == "refused":
        raise RequestError(*rest)
    if kind != "stored":
        raise RuntimeError(f"the process storing the submit failed:\n{rest[0]}")
    ids, touched = rest
    return ids, touched


def _leave_with(parent: int) -> None:
    """Exit as soon as the supervisor that started this process (pid `parent`) is gone, or
    at once if it went before this one looked."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_WATCH)
        os._exit(3)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _stored(order: Order) -> tuple[list[int], Any]:
    engine = make_engine(order.url)
    try:
        cx = Context(cfg=order.cfg, engine=engine, clock=time.time, mono=time.monotonic,
                     live=None, intake=None, out=Outbox(), id=order.run_id, owner=order.owner,
                     policy=order.policy,
                     pipeline=SimpleNamespace(default_rules=order.default_rules))
        check = functools.partial(clientapi.check_loader_env,
                                  allow=order.cfg.loader_env_allow)
        stored = bigsubmit.store(cx, order.body, order.user, check,
                                 lambda conn: access.hidden_projects(order.policy, conn,
                                                                     order.user),
                                 lambda: None)
        log.info("jobs %s were stored by process %d, of their own", stored[0], os.getpid())
        return stored
    finally:
        engine.dispose()


def main() -> None:
    _leave_with(int(sys.argv[1]))
    for sig in STOPS:
        signal.signal(sig, signal.SIG_IGN)
    if MASKS:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, bigsubmit.SUBMIT_NICE)
    except (AttributeError, OSError):
        pass
    gc.disable()         # a million frames and no cycles: collections would only walk them
    order: Order = pickle.load(sys.stdin.buffer)
    logging.basicConfig(level=order.cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        answer: tuple = ("stored", *_stored(order))
    except RequestError as exc:
        answer = ("refused", exc.code, exc.message, exc.field)
    except Exception:    # noqa: BLE001 - told to the supervisor, which logs and answers it
        answer = ("failed", traceback.format_exc())
    sys.stdout.buffer.write(pickle.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
