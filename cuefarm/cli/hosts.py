"""Worker hosts: list them, what one would run next; lock, unlock, slots, tags, drain;
admission, lock schedules and path maps."""

from __future__ import annotations

import click

from cuefarm.cli.options import Settings, comma_list, json_option, pass_settings, plural
from cuefarm.cli.output import print_json, print_table


@click.group(invoke_without_command=True, short_help="List worker hosts (and more: see --help).")
@json_option
@click.pass_context
def hosts(ctx: click.Context, as_json: bool) -> None:
    """List worker hosts; the subcommands look closer at one."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Settings).client().hosts()
    if as_json:
        return print_json(rows)
    print_table(
        ["NAME", "STATE", "LOCK", "SLOTS", "RUN", "CORES", "MEM FREE/TOTAL GB", "LOAD", "OS",
         "TAGS"],
        [[h["name"], h["state"] + (" (draining)" if h.get("drain") else ""), _lock(h),
          f"{h['slots_used']}/{h['slots_total']}", h.get("running"), h.get("cores"),
          f"{h.get('memory_free_mb', 0) / 1024:.1f}/{h.get('memory_mb', 0) / 1024:.1f}",
          f"{h.get('load') or 0:.2f}", h.get("os"), ",".join(h.get("tags") or [])]
         for h in rows])


def _lock(h: dict) -> str:
    kind = h.get("lock_kind") or ""
    if kind == "nimby":
        return "LOCKED (in use)"
    if h["lock"] != "LOCKED":
        return h["lock"]
    partial = f" to {h['lock_slots']}" if h.get("lock_slots") else ""
    return f"LOCKED{partial}" + (f" ({kind})" if kind else "")


@hosts.command("next", short_help="What a host would run next.")
@click.argument("host")
@click.option("--limit", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="How many frames to show.")
@json_option
@pass_settings
def next_for_host(settings: Settings, host: str, limit: int, as_json: bool) -> None:
    """What HOST would run next, in dispatch order (however busy it is now)."""
    rows = settings.client().next_for_host(host, limit)
    if as_json:
        return print_json(rows)
    print_table(["JOB", "NAME", "LAYER", "FRAME", "PRI", "PROJECT"],
                [[r["job_id"], r["job"], r["layer"], r["frame"], r["priority"], r["project"]]
                 for r in rows])
    if rows and rows[0].get("host_locked"):
        click.echo(f"note: {host} is locked; it starts none of this until it is unlocked",
                   err=True)


@click.command()
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@click.option("--purge", is_flag=True, help="Also kill what runs there and requeue it.")
@click.option("--slots", type=click.IntRange(min=0), default=None,
              help="A partial lock: leave this many slots.")
@pass_settings
def lock(settings: Settings, names: tuple[str, ...], purge: bool, slots: int | None) -> None:
    """Lock hosts (names, patterns like 'render-*', or tag:NAME): running frames finish (or,
    with --purge, are killed and requeued without spending retries) and nothing new starts."""
    count = settings.client().lock(list(names), purge, slots)
    click.echo(f"locked {plural(count, 'host')}")


@click.command()
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@pass_settings
def unlock(settings: Settings, names: tuple[str, ...]) -> None:
    """Unlock hosts (names, patterns or tag:NAME): their configured slots come back."""
    count = settings.client().unlock(list(names))
    click.echo(f"unlocked {plural(count, 'host')}")


# ignore_unknown_options: "-1" reaches the check below (a clear message), not "no such option".
@hosts.command("slots", short_help="Set the slots a host offers.",
               context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("slots", metavar="N|default")
@pass_settings
def slots_cmd(settings: Settings, host: str, slots: str) -> None:
    """Set HOST's slots to N, or back to what its worker offers with 'default'."""
    if slots == "default":
        value = None
    elif slots.isascii() and slots.isdigit():
        value = int(slots)
    else:
        raise click.BadParameter(f"{slots!r}: a whole number of slots, or 'default'",
                                 param_hint="N")
    settings.client().set_host_slots(host, value)
    click.echo(f"{host}: slots {'as its worker offers' if value is None else value}")


# ignore_unknown_options: "-desktop" is a tag to remove, not an option (as `priority -5`).
@hosts.command("tags", short_help="Add (+TAG) or remove (-TAG) a host's tags.",
               context_settings={"ignore_unknown_options": True})
@click.argument("host")
@click.argument("changes", metavar="+TAG|-TAG...", nargs=-1, required=True)
@pass_settings
def tags_cmd(settings: Settings, host: str, changes: tuple[str, ...]) -> None:
    """Add or remove tags on HOST: cuefarm hosts tags HOST +gpu -desktop."""
    add = [c[1:] for c in changes if c.startswith("+")]
    remove = [c[1:] for c in changes if c.startswith("-")]
    # "--json" and the like are options this command does not have, not tags to remove.
    bad = [c for c in changes if c[:1] not in "+-" or len(c) < 2 or c.startswith("--")]
    if bad:
        raise click.BadParameter(f"{bad[0]!r}: write +TAG to add or -TAG to remove",
                                 param_hint="+TAG|-TAG")
    settings.client().host_tags(host, add, remove)
    click.echo(f"{host}: tags updated")


@hosts.command("drain", short_help="Finish current frames, start nothing new, then ...")
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@click.option("--then", "then", type=click.Choice(["stay", "exit", "reboot"]), default="stay",
              show_default=True, help="What rqd does once its last frame ends.")
@click.option("--cancel", is_flag=True, help="Undo a drain that has not finished.")
@pass_settings
def drain_cmd(settings: Settings, names: tuple[str, ...], then: str, cancel: bool) -> None:
    """Drain hosts: running frames finish, nothing new starts; then rqd stays, exits or reboots
    the machine (reboot only where rqd's config allows it)."""
    count = settings.client().drain(list(names), then, cancel)
    click.echo(f"{'cancelled the drain of' if cancel else 'draining'} {plural(count, 'host')}")


@hosts.command("pending", short_help="Hosts refused admission, waiting for an admin.")
@json_option
@pass_settings
def pending_cmd(settings: Settings, as_json: bool) -> None:
    """Hosts refused by the admission policy, admitted by hand and banned."""
    rows = settings.client().admission()
    if as_json:
        return print_json(rows)
    print_table(["NAME", "STATE", "ADDRESS", "REASON"],
                [[r["name"], r["state"], r["address"], r["reason"]] for r in rows])


@hosts.command("admit", short_help="Admit hosts to the farm.")
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@pass_settings
def admit_cmd(settings: Settings, names: tuple[str, ...]) -> None:
    settings.client().admit(list(names))
    click.echo(f"admitted {', '.join(names)} (they join at their next attempt to register)")


@hosts.command("ban", short_help="Keep hosts off the farm.")
@click.argument("names", metavar="HOST...", nargs=-1, required=True)
@click.option("--reason", default="", help="Why, for the record.")
@pass_settings
def ban_cmd(settings: Settings, names: tuple[str, ...], reason: str) -> None:
    settings.client().ban(list(names), reason)
    click.echo(f"banned {', '.join(names)}")


@click.command(short_help="Show or set who may join the farm.")
@click.option("--mode", type=click.Choice(["any", "ranges", "named"]), default=None,
              help="any host; hosts in --networks or matching --patterns; admitted names only.")
@click.option("--networks", default=None, metavar="CIDR,...", help="Address ranges.")
@click.option("--patterns", default=None, metavar="PATTERN,...", help="Host name patterns.")
@json_option
@pass_settings
def admission(settings: Settings, mode: str | None, networks: str | None, patterns: str | None,
              as_json: bool) -> None:
    """The admission policy for workers; changed when options are given."""
    policy = settings.client().set_admission(
        mode, comma_list(networks) if networks is not None else None,
        comma_list(patterns) if patterns is not None else None)
    if as_json:
        return print_json(policy)
    click.echo(f"mode {policy['mode']}; networks {', '.join(policy.get('networks', [])) or '-'};"
               f" patterns {', '.join(policy.get('patterns', [])) or '-'}")


DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


def parse_days(text: str) -> list[int]:
    """'mon-fri', 'sat,sun', '0-4' -> weekday numbers (0 = Monday)."""
    out: list[int] = []
    for part in comma_list(text.lower()):
        lo, _, hi = part.partition("-")
        try:
            a = DAYS[lo[:3]] if lo[:3] in DAYS else int(lo)
            b = (DAYS[hi[:3]] if hi[:3] in DAYS else int(hi)) if hi else a
        except ValueError:
            raise click.BadParameter(f"{part!r}: days are mon..sun or 0..6",
                                     param_hint="--days") from None
        if not (0 <= a <= 6 and 0 <= b <= 6):
            raise click.BadParameter(f"{part!r}: days are mon..sun or 0..6", param_hint="--days")
        out.extend(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return sorted(set(out))


@click.group(invoke_without_command=True, short_help="Weekly lock windows for workstations.")
@json_option
@click.pass_context
def schedules(ctx: click.Context, as_json: bool) -> None:
    """List lock schedules; add or delete them with the subcommands."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Settings).client().schedules()
    if as_json:
        return print_json(rows)
    names = list(DAYS)
    print_table(["ID", "TARGET", "DAYS", "FROM", "TO", "PURGE"],
                [[r["id"], r["target"], ",".join(names[d] for d in r["days"]), r["start"],
                  r["end"], "yes" if r["purge"] else ""] for r in rows])


@schedules.command("add")
@click.argument("target")
@click.option("--days", required=True, help="mon-fri, sat,sun, 0-4 ...")
@click.option("--from", "start", required=True, metavar="HH:MM")
@click.option("--to", "end", required=True, metavar="HH:MM")
@click.option("--purge", is_flag=True, help="Kill running frames when the window opens.")
@pass_settings
def schedule_add(settings: Settings, target: str, days: str, start: str, end: str,
                 purge: bool) -> None:
    """Lock hosts matching TARGET (a name pattern or tag:NAME) during a weekly window, in the
    site's timezone: cuefarm schedules add 'tag:desktop' --days mon-fri --from 09:00 --to 19:00"""
    sid = settings.client().add_schedule(target, parse_days(days), start, end, purge)
    click.echo(f"schedule {sid} added")


@schedules.command("delete")
@click.argument("schedule_id", type=int)
@pass_settings
def schedule_delete(settings: Settings, schedule_id: int) -> None:
    settings.client().delete_schedule(schedule_id)
    click.echo(f"schedule {schedule_id} deleted")


@click.group(invoke_without_command=True, short_help="Path translation rules per worker OS.")
@json_option
@click.pass_context
def pathmap(ctx: click.Context, as_json: bool) -> None:
    """List the central path maps; add, delete or check them with the subcommands."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Settings).client().path_maps()
    if as_json:
        return print_json(rows)
    print_table(["ID", "OS", "TAG", "POS", "SOURCE", "TARGET"],
                [[r["id"], r["os"], r["tag"] or "", r["position"], r["source"], r["target"]]
                 for r in rows])


@pathmap.command("add")
@click.option("--os", "os_name", required=True, type=click.Choice(["linux", "windows", "darwin"]))
@click.option("--tag", default=None, help="Only for hosts with this tag.")
@click.option("--position", type=int, default=None, help="Order (lower first); default last.")
@click.argument("source")
@click.argument("target")
@pass_settings
def pathmap_add(settings: Settings, os_name: str, tag: str | None, position: int | None,
                source: str, target: str) -> None:
    """Paths starting with SOURCE start with TARGET on workers of --os."""
    rid = settings.client().add_path_map(os_name, source, target, tag, position)
    click.echo(f"path map {rid} added")


@pathmap.command("delete")
@click.argument("rule_id", type=int)
@pass_settings
def pathmap_delete(settings: Settings, rule_id: int) -> None:
    settings.client().delete_path_map(rule_id)
    click.echo(f"path map {rule_id} deleted")


@pathmap.command("check")
@click.option("--host", required=True)
@click.argument("path")
@json_option
@pass_settings
def pathmap_check(settings: Settings, host: str, path: str, as_json: bool) -> None:
    """How PATH reads on HOST after its path maps (the worker's own rules first)."""
    r = settings.client().check_path(host, path)
    if as_json:
        return print_json(r)
    click.echo(r["result"])
    if r["rule"]:
        click.echo(f"  by {r['rule']['origin']} rule {r['rule']['source']} -> "
                   f"{r['rule']['target']} ({r['os']})", err=True)
    else:
        click.echo(f"  no rule matches on {host} ({r['os']})", err=True)
