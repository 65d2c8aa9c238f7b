"""`cuefarm supervisor` / `python -m supervisor`: configuration is built here, once."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import time

import click

from cuefarm import watchdog
from cuefarm.config import (HEARTBEAT_MAX, ConfigError, SupervisorConfig, data_dir,
                            database_url, load)
from supervisor.pipeline import load_settings as load_pipeline
from supervisor.server import Supervisor
from supervisor.store.engine import make_engine

log = logging.getLogger("supervisor")
# Buffers this big or bigger are mapped on their own and given back to the system when freed.
BIG_BUFFER = 256 * 1024
_M_MMAP_THRESHOLD = -3      # glibc's mallopt parameter


def return_big_buffers() -> bool:
    """glibc raises its threshold for mapping a buffer on its own each time such a buffer is
    freed, so after one large message (a 50 MB string, a big event batch) later ones come from
    the heap, which does not shrink: a supervisor fed hostile megabytes grew by 100 MB and
    kept it.  A fixed threshold keeps every big buffer mapped on its own.  True when set
    (glibc); elsewhere nothing is changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, BIG_BUFFER) == 1


def default_db() -> str:
    return f"sqlite:///{data_dir() / 'cuefarm.db'}"


def check_settings(cfg: SupervisorConfig) -> None:
    """Settings the supervisor would otherwise trip over later (at the first registration or
    schedule pass): refuse them now, naming the setting."""
    from supervisor.schedules import site_timezone
    from supervisor.store.errors import ControlError
    from supervisor.store.hostadmin import check_policy
    for setting, args in (("admission_mode", (cfg.admission_mode, None, None)),
                          ("admission_networks", (None, cfg.admission_networks, None)),
                          ("admission_patterns", (None, None, cfg.admission_patterns))):
        try:
            check_policy(*args)
        except ControlError as exc:
            raise click.UsageError(f"[supervisor] {setting}: {exc}") from None
    if not 0 < cfg.heartbeat_interval <= HEARTBEAT_MAX:
        raise click.UsageError(f"[supervisor] heartbeat_interval: {cfg.heartbeat_interval} is not "
                               f"a number of seconds above 0 and at most {HEARTBEAT_MAX:g} "
                               f"(workers take no longer one)")
    for setting in ("max_frames_per_job", "max_frames_per_submit", "max_layers_per_submit"):
        if getattr(cfg, setting) < 1:
            raise click.UsageError(f"[supervisor] {setting}: {getattr(cfg, setting)} is not a "
                                   "whole number above 0")
    if cfg.admission_retry <= 0:
        raise click.UsageError(f"[supervisor] admission_retry: {cfg.admission_retry} "
                               "is not a positive number of seconds")
    try:
        site_timezone(cfg.timezone)
    except Exception as exc:  # ZoneInfoNotFoundError, or ValueError for a malformed key
        raise click.UsageError(f"[supervisor] timezone: {cfg.timezone!r} is not an IANA time "
                               f"zone such as Europe/London ({exc.__class__.__name__})") from None


@click.command("supervisor")
@click.option("--port", type=int, default=None, help="client API port P (P+1 workers, P+2 events, P+3 metrics)")
@click.option("--bind", default=None, help="interface to listen on (default 127.0.0.1; * for all)")
@click.option("--db", default=None, help="database URL (default: SQLite in the user data dir)")
@click.option("--keys-dir", default=None,
              help="where the supervisor's keys are (default: <data dir>/keys; cuefarm keys init)")
@click.option("--insecure", is_flag=True, default=None,
              help="listen beyond this machine without keys (anyone reaching the ports is trusted)")
@click.option("--host-expiry", type=float, default=None, help="seconds of silence before DOWN")
@click.option("--release-after", type=float, default=None,
              help="seconds a DOWN host's frames wait before they run elsewhere")
@click.option("--heartbeat", "heartbeat_interval", type=float, default=None,
              help="heartbeat interval workers are told to use")
@click.option("--log-level", default=None)
@click.pass_context
def command(ctx: click.Context, **flags) -> None:
    """Run the supervisor."""
    try:
        cfg = load(SupervisorConfig, "supervisor", flags)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    if cfg.port < 1 or cfg.port > 65533:
        raise click.UsageError(f"--port {cfg.port} is out of range (it uses P, P+1 and P+2)")
    check_settings(cfg)
    try:
        pipeline = load_pipeline()
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    logging.basicConfig(level=cfg.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    db = database_url(cfg.db) if cfg.db else default_db()
    try:
        engine = make_engine(db)
    except Exception as exc:  # bad URL, missing driver
        raise click.UsageError(f"--db {db!r}: {exc}") from None
    # The wall clock is time.time; a program embedding the supervisor may give another as
    # the click context's obj ({"clock": fn}), as the tests of metering do.
    # Run as `cuefarm supervisor`, the obj is the command line's settings: not a dict.
    given = ctx.obj if isinstance(ctx.obj, dict) else {}
    clock = given.get("clock", time.time)
    return_big_buffers()
    sv = Supervisor(cfg, engine, clock=clock, pipeline=pipeline)
    try:
        sv.start()
    except ConfigError as exc:      # settings checked once the parts are built (sink, ports)
        raise click.UsageError(str(exc)) from None
    except Exception as exc:
        log.error("cannot open the database %s: %s", engine.url.render_as_string(), exc)
        sys.exit(3)
    try:
        sv.bind()
    except Exception as exc:
        log.error("cannot listen on %s:%d-%d: %s", cfg.bind, cfg.port, cfg.port + 2, exc)
        sys.exit(4)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: sv.request_stop())
    watchdog.watch_parent()     # started by `cuefarm up`: stop when it is gone
    try:
        sv.run()
    finally:
        sv.close()
        engine.dispose()


def main() -> None:
    command(prog_name="cuefarm-supervisor")
