"""Who you are to the supervisor, and which projects are restricted to their members."""

from __future__ import annotations

import datetime
import time

import click

from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import print_json, print_table


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
    if me.get("insecure"):
        click.echo("INSECURE: this supervisor listens beyond its machine without keys; anyone "
                   "who reaches it may claim to be anyone (an admin runs cuefarm keys init)",
                   err=True)


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


_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def _moment(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """A time given as a duration ago (30m, 2h, 7d, 1w) or a date (2026-12-01[T10:00])."""
    if value is None:
        return None
    text = value.strip()
    if text[:-1].replace(".", "", 1).isdigit() and text[-1:] in _UNITS:
        return time.time() - float(text[:-1]) * _UNITS[text[-1]]
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a duration ago (30m, 2h, 7d, 1w) nor "
                                 f"a date (2026-12-01 or 2026-12-01T10:00)") from None
    return when.timestamp()


@click.command("audit")
@click.option("--user", help="Only this user's actions (artists only ever see their own).")
@click.option("--since", callback=_moment, metavar="WHEN",
              help="From this time: a duration ago (30m, 2h, 7d) or a date (2026-12-01).")
@click.option("--until", callback=_moment, metavar="WHEN", help="Before this time.")
@click.option("--action", help="Only this request type (job_control, host_control, submit...).")
@click.option("--job", "job_id", type=int, help="Only actions on this job.")
@click.option("--host", help="Only actions on this host.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=200, show_default=True)
@json_option
@pass_settings
def audit(settings: Settings, user: str | None, since: float | None, until: float | None,
          action: str | None, job_id: int | None, host: str | None, limit: int,
          as_json: bool) -> None:
    """Who did what, from where, to which jobs and hosts, and how it went (newest first)."""
    rows = settings.client().audit(user=user, since=since, until=until, action=action,
                                   job_id=job_id, host=host, limit=limit)
    if as_json:
        return print_json(rows)
    if not rows:
        click.echo("no matching actions")
        return
    print_table(["WHEN", "USER", "FROM", "ACTION", "ON", "OUTCOME"],
                [[time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"])), r["user"],
                  r["address"] or "-", _what(r), r["objects"] or "-",
                  r["outcome"] if not r["message"] else f"{r['outcome']}: {r['message']}"]
                 for r in rows])


def _what(row: dict) -> str:
    """The action in words: the request type, with its action or fields when it has them."""
    detail = row["detail"] if isinstance(row["detail"], dict) else {}
    sub = detail.get("action")
    return f"{row['action']} {sub}" if isinstance(sub, str) else row["action"]
