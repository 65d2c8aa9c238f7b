"""Worker licences, usage accounting and supervisor metrics."""

from __future__ import annotations

import csv
import sys
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation

import click

from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import cell, fmt_time, print_json, print_table


def _money(value: str | None) -> str:
    """An exact amount (a decimal string from the supervisor): cents when it is whole cents,
    else every digit down to the micro-dollar, never rounded for display."""
    if value is None:
        return "-"
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    cents = d.quantize(Decimal("0.01"))
    if cents == d:
        return f"${cents:,.2f}"
    return f"${d.normalize():,f}"


def _mode(s: dict) -> str:
    if s["installed"] is None:
        return "no licence cap"
    if not s["metered"]:
        return "prepaid: no worker starts past the installed count"
    if s["revoked"]:
        why = f": {s['revoked_reason']}" if s["revoked_reason"] else ""
        return (f"metering revoked by the sink at {fmt_time(s['revoked_at'])}{why}; "
                f"prepaid count enforced")
    return f"metered: overage reported to {s['sink']}"


def print_status(s: dict) -> None:
    rows = [
        ("installed", "unlimited" if s["installed"] is None else s["installed"]),
        ("in use", s["in_use"]),
        ("overage now", s["overage_now"] if s["metering_active"]
         else "0 (enforcing the installed count)" if s["installed"] is not None else 0),
        ("mode", _mode(s)),
        ("rate", f"{_money(s['rate'])} per overage worker-hour, billed per minute"),
        (f"month {s['month']}", f"{s['month_minutes']} overage worker-minutes, "
                                f"{_money(s['month_cost'])}"),
        ("reports", f"{s['pending_reports']} waiting to be delivered, "
                    + (f"{s['refused_reports']} refused by the sink (sent again when metering "
                       f"is switched back on), " if s.get("refused_reports") else "")
                    + f"{s['unreported_minutes']} minutes not yet in a report"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key.ljust(width)}  {cell(value)}")


@click.group(invoke_without_command=True, short_help="Show or set worker licences.")
@json_option
@click.pass_context
def licences(ctx: click.Context, as_json: bool) -> None:
    """Worker licences: installed, in use, overage now, and this month's overage minutes and
    cost.  A worker holds one licence while it runs at least one frame."""
    if ctx.invoked_subcommand is not None:
        return
    status = ctx.find_object(Settings).client().licences()
    if as_json:
        return print_json(status)
    print_status(status)


@licences.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("count", required=False, metavar="[N|unlimited]")
@click.option("--metered/--prepaid", "metered", default=None,
              help="Let the farm go past N, overage billed per worker-minute (or not).")
@click.option("--sink", metavar="URL|DIR",
              help="Where overage reports go: an http(s) URL, or a directory.")
@click.option("--rate", metavar="DOLLARS",
              help="Price of one overage worker-hour (billed per minute).")
@pass_settings
def set_licences(settings: Settings, count: str | None, metered: bool | None, sink: str | None,
                 rate: str | None) -> None:
    """Set the number of worker licences N (or `unlimited`) and how overage is handled; only
    what is given changes."""
    n, unlimited = None, False
    if count is not None:
        if count.strip().lower() in ("unlimited", "none"):
            unlimited = True
        else:
            try:
                n = int(count)
            except ValueError:
                raise click.BadParameter(f"{count!r} is not a whole number (or `unlimited`)",
                                         param_hint="N") from None
    if count is None and metered is None and sink is None and rate is None:
        raise click.UsageError("give N, --metered/--prepaid, --sink or --rate")
    print_status(settings.client().set_licences(n, unlimited, metered, sink, rate))


@licences.command("reports")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@json_option
@pass_settings
def reports(settings: Settings, limit: int, as_json: bool) -> None:
    """Overage reports for the metering sink, newest first."""
    rows = settings.client().licence_reports(limit)
    if as_json:
        return print_json(rows)
    print_table(["ID", "PERIOD", "WORKER-MIN", "COST", "STATE", "TRIES", "LAST ERROR"],
                [[r["id"][:12], fmt_time(r["period_start"]), r["worker_minutes"],
                  _money(r["cost"]), r["state"], r["tries"], r["last_error"][:60] or "-"]
                 for r in rows])


def _day(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None


@click.command("usage")
@click.option("--from", "start", callback=_day, metavar="YYYY-MM-DD",
              help="First day (UTC) [default: the first of this month].")
@click.option("--to", "end", callback=_day, metavar="YYYY-MM-DD",
              help="Last day, included [default: today].")
@click.option("--by", type=click.Choice(["project", "user", "day"]), default="project",
              show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV.")
@json_option
@pass_settings
def usage(settings: Settings, start: str | None, end: str | None, by: str, as_csv: bool,
          as_json: bool) -> None:
    """Slot-hours, worker-minutes and frames succeeded / failed per project, user or day."""
    today = datetime.now(timezone.utc).date()
    start = start or today.replace(day=1).isoformat()
    end = end or today.isoformat()
    rows = settings.client().usage(start, end, by)
    columns = [by, "slot_hours", "worker_minutes", "succeeded", "failed"]
    if as_json:
        return print_json(rows)
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(columns)
        for r in rows:
            out.writerow([r[c] for c in columns])
        return
    print_table([by.upper(), "SLOT-HOURS", "WORKER-MINUTES", "SUCCEEDED", "FAILED"],
                [[r[by], round(r["slot_hours"], 2), round(r["worker_minutes"], 1),
                  r["succeeded"], r["failed"]] for r in rows])


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return f"{value / (1 << 20):.1f} MiB"
    if unit == "s":
        return f"{value * 1000:.2f} ms"
    if unit in ("%", "/s", ""):
        return f"{value:.2f}{unit}" if unit != "/s" else f"{value:.2f}/s"
    return f"{value:g}"


@click.command("metrics")
@json_option
@pass_settings
def metrics(settings: Settings, as_json: bool) -> None:
    """The supervisor's latest figures: its machine, its process, the database, the farm.
    SCOPE says which are the farm's (the same through every supervisor) and which this
    supervisor's own."""
    rows = settings.client().metrics()
    if as_json:
        return print_json(rows)
    if rows and rows[0].get("supervisor"):
        click.echo(f"supervisor {rows[0]['supervisor']}")
    print_table(["METRIC", "VALUE", "SCOPE", "DESCRIPTION"],
                [[r["name"], _figure(r["value"], r["unit"]), r.get("scope", ""), r["help"]]
                 for r in rows])


@click.command("supervisors")
@json_option
@pass_settings
def supervisors(settings: Settings, as_json: bool) -> None:
    """The supervisors serving the farm (sharing its database): the workers connected to each,
    their slots, frames dispatched, CPU and memory.  * marks the one answering."""
    rows = settings.client().supervisors()
    if as_json:
        return print_json(rows)
    print_table(["SUPERVISOR", "ADDRESS", "VERSION", "WORKERS", "SLOTS", "DISPATCHED", "CPU",
                 "MEMORY"],
                [[("* " if r["this"] else "") + r["owner"], r["address"], r["version"],
                  r["hosts"], f"{r['slots_used']}/{r['slots_total']}", r["dispatched"],
                  f"{r['cpu_percent']:.0f}%", f"{r['rss_mb']:.0f} MiB"] for r in rows])
    click.echo(f"{len(rows)} supervisor{'s' if len(rows) != 1 else ''}, "
               f"{sum(r['hosts'] for r in rows)} workers, "
               f"{sum(r['slots_used'] for r in rows)}/{sum(r['slots_total'] for r in rows)} "
               f"slots in use")


COMMANDS = [licences, usage, metrics, supervisors]
