"""Who you are to the supervisor, and which projects are restricted to their members."""

from __future__ import annotations

import click

from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import print_json


@click.command()
@json_option
@pass_settings
def whoami(settings: Settings, as_json: bool) -> None:
    """The user the supervisor takes you for, and your role there (artist, wrangler, admin)."""
    me = settings.client().whoami()
    if as_json:
        return print_json(me)
    note = " (open farm: no roles configured, everyone is an admin)" if me["open"] else ""
    click.echo(f"{me['user']}: {me['role']}{note}")


@click.command("members")
@click.argument("name")
@click.argument("users", nargs=-1)
@click.option("--open", "open_", is_flag=True, help="Lift the restriction: everyone sees it.")
@pass_settings
def members(settings: Settings, name: str, users: tuple[str, ...], open_: bool) -> None:
    """Restrict project NAME to USERS: artists who are not members do not see its jobs, cannot
    submit to it nor depend on its jobs.  The list given replaces the previous one."""
    if open_ == bool(users):
        raise click.UsageError("give the members (USERS...) or --open, not both")
    count = settings.client().set_project_members(name, list(users))
    if count:
        click.echo(f"project {name}: members {', '.join(sorted(set(users)))}")
    else:
        click.echo(f"project {name}: open to everyone")
