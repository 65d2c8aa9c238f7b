"""`cuefarm archive`: retention's archive files; bring jobs back from one."""

from __future__ import annotations

import click

from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import fmt_time, print_json, print_table


@click.group(short_help="Archived (retired) jobs: list archive files, restore jobs.")
def archive() -> None:
    """Finished jobs older than the supervisor's `[retention] finished_job_days` are written
    to archive files and leave the live database; usage figures stay."""


@archive.command("list")
@json_option
@pass_settings
def list_archives(settings: Settings, as_json: bool) -> None:
    """The archive files, oldest first, with the jobs in each."""
    rows = settings.client().archives()
    if as_json:
        return print_json(rows)
    if not rows:
        click.echo("no archive files")
        return
    print_table(["FILE", "JOBS", "SIZE", "FINISHED FROM", "TO", "JOB IDS"],
                [[r["file"], r["jobs"], _size(r["bytes"]),
                  fmt_time(r["first_finished"]), fmt_time(r["last_finished"]),
                  r["error"] or _ids(r["job_ids"])] for r in rows])


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _ids(ids: list[int]) -> str:
    text = ",".join(str(i) for i in ids[:8])
    return text + (f",... ({len(ids)})" if len(ids) > 8 else "")


@archive.command("restore")
@click.argument("file")
@click.option("--job", "job_ids", type=int, multiple=True, metavar="ID",
              help="Only this job (repeatable); default: every job in FILE not live now.")
@json_option
@pass_settings
def restore(settings: Settings, file: str, job_ids: tuple[int, ...], as_json: bool) -> None:
    """Bring the jobs of archive FILE (a name from `cuefarm archive list`) back as finished,
    read-only jobs."""
    ids = settings.client().restore_archive(file.rsplit("/", 1)[-1], list(job_ids))
    if as_json:
        return print_json(ids)
    click.echo(f"restored {len(ids)} job(s)" + (f": {_ids(ids)}" if ids else
                                                 " (all were live already)"))


def _days(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    text = value.strip().lower()
    units = {"d": 1.0, "w": 7.0, "h": 1 / 24}
    number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "d")
    try:
        days = float(number) * units[unit]
    except ValueError:
        days = -1.0
    if not days > 0:
        raise click.BadParameter(f"{value!r}: give an age such as 30d, 2w or 12h")
    return days


@archive.command("run")
@click.option("--older-than", "older_than", callback=_days, metavar="AGE",
              help="Jobs finished this long ago (30d, 2w, 12h) [default: [retention] "
                   "finished_job_days].")
@click.option("--dry-run", is_flag=True, help="Only say how many jobs and frames would go.")
@pass_settings
def run(settings: Settings, older_than: float | None, dry_run: bool) -> None:
    """Archive the finished jobs due now (instead of waiting for the next pass)."""
    count, note = settings.client().run_retention_reply(older_than, dry_run)
    if dry_run:
        click.echo(note)
        return
    click.echo(f"archived {count} job(s)" + (f"; {note}: run it again" if note else ""))
