"""The `cuefarm` command line: submit, query and control jobs; schedule; run a local farm with `up`.

Program subcommands (`cuefarm supervisor`, `cuefarm rqd`, `cuefarm gui`) are plugged in from the
`cuefarm.commands` entry points and loaded only when named, so `cuefarm jobs` never imports Qt or
SQLAlchemy and the library never imports the programs.

The commands live in one module per subject (jobs, control, logs, hosts, admin, submit, up);
this module holds the group, its global options and the plugin loading.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import sys
from typing import Any

import click

from cuefarm import config, spec
from cuefarm.cli import (access, admin, billing, comments, control, history, hosts, jobs, logs,
                         submit, up, wrangle)
from cuefarm.cli import archive, export, keys, notifications, project_notify
from cuefarm.cli.options import JOB, JobId, Settings, json_option, pass_settings, user_words
from cuefarm.client import CueFarmError, Unreachable, parse_addresses
from cuefarm.protocol import ProtocolError

__all__ = ["cli", "main", "CueFarmGroup", "Settings", "JOB", "JobId", "json_option",
           "pass_settings"]

PLUGIN_GROUP = "cuefarm.commands"
# Shown in `cuefarm --help` without importing the program (which would pull in Qt or SQLAlchemy).
PLUGIN_HELP = {
    "supervisor": "Run the supervisor (the dispatcher).",
    "rqd": "Run a worker daemon.",
    "gui": "Open the desktop client.",
}
GUI_MODULES = {"PySide6", "qtpy", "pyqtgraph", "shiboken6"}


class CueFarmGroup(click.Group):
    """A group that loads program commands from entry points lazily; turns errors into messages."""

    def _plugins(self) -> dict[str, importlib.metadata.EntryPoint]:
        eps = importlib.metadata.entry_points(group=PLUGIN_GROUP)
        return {ep.name: ep for ep in eps if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(self._plugins()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        ep = self._plugins().get(name)
        if ep is None:
            return None
        try:
            loaded = ep.load()
        except Exception as exc:  # a missing optional dependency, or a broken install
            reason = f"{type(exc).__name__}: {exc}"
            missing = (getattr(exc, "name", None) or "").partition(".")[0]
            if isinstance(exc, ImportError) and missing in GUI_MODULES:
                reason += " (the desktop client needs: pip install 'cuefarm[gui]')"
            return _unavailable(name, reason)
        if not isinstance(loaded, click.Command):
            return _unavailable(name, f"{ep.value} is not a click command")
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Describe plugins from a fixed table so that help never loads them.
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is None:
                rows.append((name, PLUGIN_HELP.get(name, f"Run the {name} program.")))
            elif not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Unreachable as exc:
            click.echo(f"error: {exc}", err=True)
            click.echo("Is the supervisor running?  Start a local farm with `cuefarm up`, or point "
                       "at another one with --supervisor HOST:PORT (or CUEFARM_SUPERVISOR).",
                       err=True)
            ctx.exit(2)
        except spec.SpecError as exc:       # a job file: the field is the key at fault
            click.echo(f"error: {exc.field}: {exc.message}", err=True)
            ctx.exit(1)
        except CueFarmError as exc:         # a refusal names a request field: say the flag
            settings = ctx.obj if isinstance(ctx.obj, Settings) else None
            flag = user_words(settings.command if settings else None, exc.field)
            click.echo(f"error: {flag}: {exc}" if flag else f"error: {exc}", err=True)
            ctx.exit(1)
        except config.ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(1)
        except ProtocolError as exc:
            click.echo(f"error: unreadable reply from the supervisor ({exc.code}): {exc.message}",
                       err=True)
            ctx.exit(1)


def _unavailable(name: str, reason: str) -> click.Command:
    """A stand-in for a program command that cannot be loaded here."""

    @click.command(name, context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True}, add_help_option=False)
    def unavailable() -> None:
        click.echo(f"error: the {name} command is not available: {reason}", err=True)
        sys.exit(1)

    return unavailable


def _check_address(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        parse_addresses(value)
    except config.ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group(cls=CueFarmGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--supervisor", "address", metavar="HOST:PORT", envvar="CUEFARM_SUPERVISOR",
              default=config.DEFAULT_ADDRESS, show_default=True, callback=_check_address,
              help="The supervisor's client API address (env CUEFARM_SUPERVISOR); several, "
                   "comma-separated, for supervisors sharing one farm: the next is used when "
                   "one does not answer.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), envvar="CUEFARM_TIMEOUT",
              default=30.0, show_default=True, metavar="SECONDS",
              help="How long to wait for each reply (env CUEFARM_TIMEOUT).")
@click.option("-v", "--verbose", count=True, help="Log more (repeat for debug).")
@click.version_option(package_name="cuefarm", prog_name="cuefarm")
@click.pass_context
def cli(ctx: click.Context, address: str, timeout: float, verbose: int) -> None:
    """Submit, watch and control render jobs on a CueFarm supervisor."""
    if verbose:
        # Only when asked: the program commands (supervisor, rqd, gui) configure their own logs.
        logging.basicConfig(level=logging.INFO if verbose == 1 else logging.DEBUG,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ctx.get_parameter_source("address") is click.core.ParameterSource.COMMANDLINE:
        # Program commands that read CUEFARM_SUPERVISOR (gui) then default to the same address.
        os.environ["CUEFARM_SUPERVISOR"] = address
    given = ctx.obj if isinstance(ctx.obj, dict) else {}
    settings = Settings(address, timeout, given.get("connect"))
    ctx.obj = settings
    ctx.call_on_close(settings.close)


for _command in [
    submit.submit, submit.spec_cmd,
    jobs.jobs, jobs.job, jobs.layers, jobs.layer, jobs.frames, jobs.wait,
    *control.COMMANDS,
    logs.log_cmd,
    hosts.hosts, hosts.lock, hosts.unlock, hosts.admission, hosts.schedules, hosts.pathmap,
    admin.why, admin.projects, admin.limits, admin.deps,
    up.up, up.down,
    *billing.COMMANDS,
    access.whoami, access.audit,
    comments.comment, comments.comments,
    *wrangle.COMMANDS,
]:
    cli.add_command(_command)
admin.projects.add_command(access.members)
for _command in wrangle.DEPS_COMMANDS:
    admin.deps.add_command(_command)
for _command in wrangle.LAYER_COMMANDS:
    jobs.layer.add_command(_command)
jobs.job.add_command(export.export_job)
cli.add_command(notifications.notifications)
cli.add_command(archive.archive)
cli.add_command(keys.keys)
admin.projects.add_command(project_notify.project_notify)
cli.add_command(project_notify.job_notify)
hosts.hosts.add_command(history.host_history)


def main(argv: list[str] | None = None) -> None:
    """Console script entry point."""
    cli.main(args=argv, prog_name="cuefarm")
