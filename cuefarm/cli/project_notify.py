"""`cuefarm projects notify NAME`: a project's notification rules for jobs without their own."""

from __future__ import annotations

import click

from cuefarm.cli.options import Settings, comma_list, json_option, pass_settings
from cuefarm.cli.output import print_json, print_table
from cuefarm.notify_rules import EVENTS


@click.command("notify", short_help="A project's notifications for jobs without their own.")
@click.argument("name")
@click.option("--email", "emails", multiple=True, metavar="ADDRESS",
              help="Tell this address (repeatable).")
@click.option("--webhook", "webhooks", multiple=True, metavar="URL",
              help="POST to this URL (repeatable).")
@click.option("--when", callback=lambda ctx, param, value: comma_list(value),
              metavar="EVENTS", default="finished",
              show_default=True, help=f"Comma-separated: {', '.join(EVENTS)}.")
@click.option("--clear", is_flag=True, help="No rules: the supervisor's defaults apply.")
@json_option
@pass_settings
def project_notify(settings: Settings, name: str, emails: tuple[str, ...],
                   webhooks: tuple[str, ...], when: list[str], clear: bool,
                   as_json: bool) -> None:
    """Show project NAME's notification rules, or set them (--email, --webhook, --when) for
    its jobs that give no `notify` of their own; --clear removes them."""
    client = settings.client()
    rules = None
    if clear or emails or webhooks:
        rules = ([{"when": when, "email": e} for e in emails]
                 + [{"when": when, "webhook": w} for w in webhooks])
    current = client.project_notify(name, rules)
    if as_json:
        return print_json(current)
    if not current:
        click.echo(f"{name}: no rules (jobs without their own get the supervisor's defaults)")
        return
    print_table(["WHEN", "TO"], [[",".join(r["when"]), r.get("email") or r.get("webhook")]
                                 for r in current])
