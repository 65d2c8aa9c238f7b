"""`cuefarm notifications`: messages not sent yet or given up on, with the last error."""

from __future__ import annotations

import click

from cuefarm.cli.options import DefaultGroup, Settings, json_option, pass_settings
from cuefarm.cli.output import fmt_time, print_json, print_table


@click.group(cls=DefaultGroup, default_command="list",
             short_help="Notifications not sent yet or given up on; retry them.")
def notifications() -> None:
    """List notifications (`cuefarm notifications`), or try failed ones again
    (`cuefarm notifications retry [ID...]`)."""


@notifications.command("list")
@click.option("--all", "include_sent", is_flag=True, help="Sent ones too.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=1000, show_default=True)
@json_option
@pass_settings
def list_notifications(settings: Settings, include_sent: bool, limit: int,
                       as_json: bool) -> None:
    """Notifications pending (with their next try) and failed (given up on), newest first."""
    rows = settings.client().notifications(include_sent, limit)
    if as_json:
        return print_json(rows)
    if not rows:
        click.echo("no notifications pending or failed" if not include_sent
                   else "no notifications")
        return
    print_table(["ID", "JOB", "EVENT", "TO", "STATE", "TRIES", "NEXT", "LAST ERROR"],
                [[r["id"], r["job_id"], r["event"], r["target"], r["state"], r["tries"],
                  fmt_time(r["next_at"]) if r["state"] == "pending" else "-",
                  (r["last_error"] or "-")[:80]] for r in rows])


@notifications.command("retry")
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@pass_settings
def retry_notifications(settings: Settings, ids: tuple[int, ...]) -> None:
    """Try failed notifications again from now (these; none given: all failed ones)."""
    count = settings.client().retry_notifications(list(ids))
    click.echo(f"{count} notification(s) to be tried again")
