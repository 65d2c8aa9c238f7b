"""`cuefarm hosts history HOST`: a host's kept load, memory and running frames over time."""

from __future__ import annotations

import click

from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import fmt_time, print_json, print_table


@click.command("history", short_help="A host's load, memory and frames over the last hours.")
@click.argument("host")
@click.option("--hours", type=click.FloatRange(0, min_open=True), default=24.0,
              show_default=True, help="How far back (the supervisor keeps a day by default).")
@json_option
@pass_settings
def host_history(settings: Settings, host: str, hours: float, as_json: bool) -> None:
    """HOST's load, memory in use and running frames, one line per step the supervisor keeps
    (a minute by default), oldest first."""
    rows = settings.client().host_history(host, hours)
    if as_json:
        return print_json(rows)
    if not rows:
        click.echo(f"no history of {host} in the last {hours:g} hours")
        return
    print_table(["TIME", "LOAD", "MEMORY MB", "RUNNING"],
                [[fmt_time(r["t"]), r["load"], r["memory_used_mb"], r["running"]]
                 for r in rows])
