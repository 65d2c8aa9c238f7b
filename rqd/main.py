"""Command line of the worker daemon: `python -m rqd` or `cuefarm rqd`."""

from __future__ import annotations

import logging
import sys

import click

from cuefarm import config as cfgmod
from cuefarm import openfiles, pathmap, watchdog
from cuefarm.config import ConfigError, RqdConfig


@click.command(name="rqd")
@click.option("--supervisor", "supervisors", multiple=True, metavar="HOST:PORT",
              help="Supervisor client API address (the worker link is PORT+1); repeat (or "
                   "separate with commas) to list the supervisors sharing a farm, tried in turn.")
@click.option("--name", default=None, help="Worker name (default: the short hostname).")
@click.option("--slots", type=int, default=None, help="Slots offered (default: one per core).")
@click.option("--state-dir", default=None, help="Where running attempts and unacknowledged "
                                                "completions are kept.")
@click.option("--log-dir", default=None, help="Where frame logs go (default: STATE_DIR/logs).")
@click.option("--heartbeat", type=float, default=None,
              help="Heartbeat interval until the supervisor sets one (seconds).")
@click.option("--supervisor-timeout", type=float, default=None,
              help="Reconnect after this long without a word from the supervisor (seconds).")
@click.option("--kill-grace", type=float, default=None,
              help="Seconds between SIGTERM and SIGKILL when killing a frame (default 5).")
@click.option("--log-level", default=None,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="A tag the supervisor can match jobs on; repeat for several (the OS name and "
                   "'gpu' are added automatically).")
@click.option("--path-map", "path_maps", multiple=True, metavar="SOURCE=TARGET",
              help="Rewrite paths starting with SOURCE to start with TARGET in commands, "
                   "environment and working directory; repeat for several (first match wins, "
                   "tried before the supervisor's rules).")
@click.option("--nimby/--no-nimby", default=None,
              help="Lock this host while a local user is active (workstations).")
@click.option("--min-free-disk-mb", type=int, default=None,
              help="Refuse frames when the log directory's disk has less free (default 100).")
@click.option("--min-uid", type=click.IntRange(min=0), default=None,
              help="When rqd runs as root, frames run as the job's user; users below this uid "
                   "are refused (default 1000; a one-machine farm run by root uses 0).")
@click.option("--key", default=None, metavar="FILE",
              help="This worker's key file (cuefarm keys add-worker); default: one rqd makes "
                   "in its state dir when the supervisor uses keys.")
@click.option("--supervisor-key", default=None, metavar="KEY",
              help="The supervisor's public key: Z85 text or its supervisor.pub file.")
def command(supervisors: tuple[str, ...], name: str | None, slots: int | None,
            state_dir: str | None, log_dir: str | None, heartbeat: float | None,
            supervisor_timeout: float | None, kill_grace: float | None,
            log_level: str | None, tags: tuple[str, ...], path_maps: tuple[str, ...],
            nimby: bool | None, min_free_disk_mb: int | None, min_uid: int | None,
            key: str | None, supervisor_key: str | None) -> None:
    """Run the worker daemon: take frames from a supervisor and run them."""
    listed = [a.strip() for given in supervisors for a in given.split(",") if a.strip()]
    overrides = {"supervisors": listed or None, "name": name, "slots": slots,
                 "state_dir": state_dir, "log_dir": log_dir, "heartbeat_interval": heartbeat,
                 "supervisor_timeout": supervisor_timeout, "kill_grace": kill_grace,
                 "log_level": log_level, "tags": list(tags) or None,
                 "path_maps": list(path_maps) or None, "min_free_disk_mb": min_free_disk_mb,
                 "min_uid": min_uid, "key": key, "supervisor_key": supervisor_key}
    try:
        cfg = cfgmod.load(RqdConfig, "rqd", overrides)
        if nimby is not None:
            cfg.nimby = nimby
        cfg.resolve()
        if not cfg.supervisors:
            raise ConfigError("no supervisor address given")
        for address in cfg.supervisors:
            cfgmod.parse_address(address)
        try:
            pathmap.parse_rules(cfg.path_maps)
        except ValueError as exc:
            raise ConfigError(f"path_maps: {exc}") from None
        if not all(isinstance(w, str) for w in cfg.reboot_command) or not cfg.reboot_command:
            raise ConfigError("reboot_command must be a non-empty list of strings")
        from rqd.keys import worker_keys
        worker_keys(cfg)        # a key that cannot be used is said now, not at the first connect
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if cfg.slots < 0:
        raise click.BadParameter("must not be negative", param_hint="--slots")
    logging.basicConfig(level=cfg.log_level.upper() if isinstance(cfg.log_level, str) else "INFO",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from rqd.daemon import Daemon     # after logging is set up
    openfiles.lift_limit()      # a file or more for each running frame
    watchdog.watch_parent()     # started by `cuefarm up`: stop (killing frames) when it is gone
    sys.exit(Daemon(cfg, kill_grace=cfg.kill_grace).run())


def main() -> None:
    """Entry point of `python -m rqd`."""
    command(prog_name="rqd")
