"""`cuefarm projects notify NAME`: a project's notification rules for jobs without their own."""

from __future__ import annotations

import click

from cuefarm.cli.options import Settings, comma_list, json_option, pass_settings
from cuefarm.cli.output import print_json, print_table
from cuefarm.notify_rules import EVENTS


def rule_options(fn):
    """--email, --webhook and --when: the rules of a project or a job."""
    for option in reversed([
            click.option("--email", "emails", multiple=True, metavar="ADDRESS",
                         help="Tell this address (repeatable)."),
            click.option("--webhook", "webhooks", multiple=True, metavar="URL",
                         help="POST to this URL (repeatable)."),
            click.option("--when", callback=lambda ctx, param, value: comma_list(value),
                         metavar="EVENTS", default="finished", show_default=True,
                         help=f"Comma-separated: {', '.join(EVENTS)}.")]):
        fn = option(fn)
    return fn


@click.command("notify", short_help="A project's notifications for jobs without their own.")
@click.argument("name")
@rule_options
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


@click.command("notify", short_help="Be told when a job finishes or dies.")
@click.argument("job_id", type=int, metavar="JOB")
@rule_options
@click.option("--clear", is_flag=True,
              help="No rules of its own: its project's or the supervisor's apply.")
@json_option
@pass_settings
def job_notify(settings: Settings, job_id: int, emails: tuple[str, ...],
               webhooks: tuple[str, ...], when: list[str], clear: bool, as_json: bool) -> None:
    """Show job JOB's notification rules, or set them (--email, --webhook, --when; they
    replace the job's own rules); --clear removes them."""
    if clear and (emails or webhooks):
        raise click.UsageError("give --email/--webhook or --clear, not both")
    rules = None
    if clear or emails or webhooks:
        rules = ([{"when": when, "email": e} for e in emails]
                 + [{"when": when, "webhook": w} for w in webhooks])
    current = settings.client().job_notify(job_id, rules)
    if as_json:
        return print_json(current)
    if not current:
        click.echo(f"job {job_id}: no rules of its own (its project's or the supervisor's "
                   f"defaults apply)")
        return
    print_table(["WHEN", "TO"], [[",".join(r["when"]), r.get("email") or r.get("webhook")]
                                 for r in current])
