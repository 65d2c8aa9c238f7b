"""Jobs, layers and frames: list and show them, change them after submission, wait for a job."""

from __future__ import annotations

import time
from typing import Any

import click

from cuefarm import spec
from cuefarm.cli.options import (JOB, DefaultGroup, Settings, comma_list, json_option,
                                 pass_settings)
from cuefarm.cli.output import (fmt_duration, fmt_mb, fmt_time, print_json, print_record,
                                print_table, shorten)
from cuefarm.states import FrameState


@click.command()
@click.option("--project", help="Only this project.")
@click.option("--user", help="Only this user's jobs.")
@click.option("--active", is_flag=True, help="Leave out finished jobs.")
@json_option
@pass_settings
def jobs(settings: Settings, project: str | None, user: str | None, active: bool,
         as_json: bool) -> None:
    """List jobs."""
    rows = settings.client().jobs(project, user, include_finished=not active)
    if as_json:
        return print_json(rows)
    print_table(
        ["ID", "NAME", "PROJECT", "USER", "STATE", "STATUS", "SUCCEEDED", "RUN", "WAIT", "DEP",
         "DEAD", "EATEN", "PRI"],
        [[j["id"], j["name"], j["project"], j["user"], j["state"],
          j["status"] + (" (stalled)" if j.get("stalled") else ""),
          f"{j['succeeded']}/{j['frames_total']}", j["running"],
          j["waiting"], j.get("depend", 0), j["dead"], j.get("eaten", 0), j["priority"]]
         for j in rows])


# --- one job: `cuefarm job JOB` shows it, `cuefarm job set JOB ...` changes it ------------------

@click.group(cls=DefaultGroup, default_command="show", short_help="Show or change one job.")
def job() -> None:
    """Show one job (`cuefarm job JOB`), or change it (`cuefarm job set JOB ...`)."""


@job.command("show")
@click.argument("job_id", metavar="JOB", type=JOB)
@json_option
@pass_settings
def show_job(settings: Settings, job_id: int, as_json: bool) -> None:
    """Show one job."""
    row = settings.client().job(job_id)
    if as_json:
        return print_json(row)
    print_record(row, times=("submitted_at", "started_at", "finished_at"))


def _max_slots(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return ...  # not given: leave it unchanged
    if value.strip().lower() in ("none", "unlimited"):
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number or 'none'") from None


@job.command("set")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--priority", type=int, metavar="N", help="Higher runs first.")
@click.option("--min-slots", type=int, metavar="N",
              help="Slots the job gets before jobs of lower priority in its project.")
@click.option("--max-slots", callback=_max_slots, metavar="N|none",
              help="The most slots the job may use ('none': no maximum).")
@click.option("--project", metavar="NAME", help="Move the job to this project.")
@pass_settings
def set_job(settings: Settings, job_id: int, priority: int | None, min_slots: int | None,
            max_slots: Any, project: str | None) -> None:
    """Change a submitted job: only the options given are changed."""
    values: dict[str, Any] = {}
    if priority is not None:
        values["priority"] = priority
    if min_slots is not None:
        values["min_slots"] = min_slots
    if max_slots is not ...:
        values["max_slots"] = max_slots
    if project is not None:
        values["project"] = project
    if not values:
        raise click.UsageError("give at least one of --priority, --min-slots, --max-slots, "
                               "--project")
    settings.client().set_job(job_id, **values)
    click.echo(f"job {job_id}: " + _describe(values))


@job.command("badhosts", short_help="Hosts kept off a job after failing it; lift a ban.")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--clear", "clear_host", metavar="HOST",
              help="Let HOST run the job again (its failures there are forgotten).")
@click.option("--all", "clear_all", is_flag=True, help="Clear every host on the list.")
@json_option
@pass_settings
def bad_hosts(settings: Settings, job_id: int, clear_host: str | None, clear_all: bool,
              as_json: bool) -> None:
    """List the hosts that failed frames of JOB and whether each is kept off it (the bad-host
    list), or clear one host (--clear HOST) or all of them (--all)."""
    client = settings.client()
    if clear_host is not None and clear_all:
        raise click.UsageError("give --clear HOST or --all, not both")
    if clear_host is not None or clear_all:
        count = client.clear_bad_host(job_id, None if clear_all else clear_host)
        if as_json:
            return print_json({"job_id": job_id, "cleared": count})
        click.echo(f"job {job_id}: cleared {count} bad host{'' if count == 1 else 's'}")
        return
    rows = client.bad_hosts(job_id)
    if as_json:
        return print_json(rows)
    print_table(["HOST", "FAILURES", "BANNED UNTIL"],
                [[r["host"], r["failures"], fmt_time(r["banned_until"]) if r["banned"] else "-"]
                 for r in rows])


def _describe(values: dict[str, Any]) -> str:
    def text(v: Any) -> str:
        if v is None:
            return "none"
        if isinstance(v, list):
            return ",".join(v) or "(none)"
        return str(v)

    return ", ".join(f"{key} {text(v)}" for key, v in values.items())


# --- layers -------------------------------------------------------------------------------------

@click.command()
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--stats", is_flag=True,
              help="Run time (avg, min, max), peak memory and core-hours per layer.")
@json_option
@pass_settings
def layers(settings: Settings, job_id: int, stats: bool, as_json: bool) -> None:
    """List the layers of a job (with --stats: how heavy each one is)."""
    if stats:
        return _layer_stats(settings, job_id, as_json)
    rows = settings.client().layers(job_id)
    if as_json:
        return print_json(rows)
    print_table(
        ["ID", "NAME", "RANGE", "CHUNK", "SLOTS", "SUCCEEDED", "RUN", "WAIT", "DEP", "DEAD",
         "EATEN", "DEPENDS ON", "COMMAND"],
        [[la["id"], la["name"], la["range"], la["chunk"], la["slots"],
          f"{la['succeeded']}/{la['frames_total']}", la["running"],
          la["waiting"], la.get("depend", 0), la["dead"], la.get("eaten", 0),
          ", ".join(map(spec.describe_dependency, la.get("depends_on") or [])) or "-",
          shorten(la["command"])] for la in rows])


def _layer_stats(settings: Settings, job_id: int, as_json: bool) -> None:
    rows = settings.client().layer_stats(job_id)
    if as_json:
        return print_json(rows)
    print_table(
        ["LAYER", "SUCCEEDED", "FAILED", "AVG", "MIN", "MAX", "PEAK MB", "CORE-HOURS"],
        [[r["layer"], r["succeeded"], r["failed"], fmt_duration(r["avg"]),
          fmt_duration(r["min"]), fmt_duration(r["max"]), fmt_mb(r["peak_rss"]),
          f"{r['core_hours']:.2f}"] for r in rows])


@click.group(short_help="Change a layer of a submitted job.")
def layer() -> None:
    """Change a layer of a submitted job (`cuefarm layer set JOB LAYER ...`)."""


def _slots(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    text = value.strip()
    # A plain number goes as a number; "N+" and "all" are the supervisor's to check.
    return int(text) if text.isascii() and text.isdigit() else text


LIST_OPTIONS = ("tags", "hosts", "omit_hosts", "limits")
INT_OPTIONS = ("memory", "gpus", "timeout", "timeout_no_output", "max_retries")


@layer.command("set")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.argument("layer_name", metavar="LAYER")
@click.option("--tags", metavar="A,B", help="Only hosts with all these tags ('' clears).")
@click.option("--os", "os_name", type=click.Choice([*spec.OS_NAMES, "any"]),
              help="Only hosts running this OS ('any' clears).")
@click.option("--hosts", metavar="PATTERNS", help="Only hosts matching one of these patterns, "
                                                  "e.g. 'render-*' ('' clears).")
@click.option("--omit-hosts", metavar="PATTERNS", help="Never hosts matching these ('' clears).")
@click.option("--requirements", metavar="EXPR",
              help="A host expression, e.g. 'host.memory >= 32000' ('' clears).")
@click.option("--limits", metavar="A,B", help="Limits each frame needs ('' clears).")
@click.option("--slots", callback=_slots, metavar="N|N+|all",
              help="Slots per frame: exactly N, at least N, or the whole idle host.")
@click.option("--memory", type=int, metavar="MB", help="Memory each frame needs.")
@click.option("--gpus", type=int, metavar="N", help="GPUs each frame needs.")
@click.option("--timeout", type=int, metavar="SECONDS",
              help="Kill a frame running longer than this (0: never).")
@click.option("--timeout-no-output", type=int, metavar="SECONDS",
              help="Kill a frame silent for this long (0: never).")
@click.option("--max-retries", type=int, metavar="N", help="Failures before a frame is DEAD.")
@pass_settings
def set_layer(settings: Settings, job_id: int, layer_name: str, os_name: str | None,
              requirements: str | None, slots: Any, **options: Any) -> None:
    """Change how LAYER of JOB is matched to hosts and run; only the options given are
    changed.  Waiting frames are matched again at once."""
    values: dict[str, Any] = {}
    for key in LIST_OPTIONS:
        if options[key] is not None:
            values[key] = comma_list(options[key])
    if os_name is not None:
        values["os"] = None if os_name == "any" else os_name
    if requirements is not None:
        values["requirements"] = requirements.strip() or None
    if slots is not None:
        values["slots"] = slots
    for key in INT_OPTIONS:
        if options[key] is not None:
            values[key] = options[key]
    if not values:
        raise click.UsageError("give at least one option to change (see --help)")
    settings.client().set_layer(job_id, layer_name, **values)
    click.echo(f"job {job_id} layer {layer_name}: " + _describe(values))


# --- frames -------------------------------------------------------------------------------------

def _state_list(ctx: click.Context, param: click.Parameter,
                value: tuple[str, ...]) -> list[str] | None:
    states = [s.strip().upper() for v in value for s in v.split(",") if s.strip()]
    allowed = [s.value for s in FrameState]
    for s in states:
        if s not in allowed:
            raise click.BadParameter(f"{s!r} is not one of {', '.join(allowed)}")
    return states or None


@click.command()
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--layer", help="Only this layer.")
@click.option("--state", "states", multiple=True, callback=_state_list, metavar="STATE",
              help="Only frames in this state (repeat, or separate with commas).")
@json_option
@pass_settings
def frames(settings: Settings, job_id: int, layer: str | None, states: list[str] | None,
           as_json: bool) -> None:
    """List the frames of a job."""
    rows = settings.client().frames(job_id, layer, states)
    if as_json:
        return print_json(rows)
    now = time.time()

    def runtime(f: dict[str, Any]) -> float | None:
        if f.get("runtime") is None and f["state"] == "RUNNING" and f.get("started_at"):
            return max(0.0, now - f["started_at"])
        return f.get("runtime")

    def progress(f: dict[str, Any]) -> str:
        # How far a running frame is, from the progress lines it printed; of a frame that
        # ended, its state says enough.
        value = f.get("progress")
        return f"{value}%" if f["state"] == "RUNNING" and value is not None else ""

    print_table(
        ["ID", "LAYER", "FRAME", "STATE", "PROGRESS", "HOST", "ATTEMPT", "START", "RUNTIME",
         "PEAK MB", "EXIT", "REASON"],
        [[f["id"], f["layer"], f["frames"], f["state"], progress(f), f.get("host"), f["attempt"],
          fmt_time(f.get("started_at")), fmt_duration(runtime(f)), fmt_mb(f.get("peak_rss")),
          f.get("exit_status"), f.get("reason") or ""] for f in rows])


# --- wait ---------------------------------------------------------------------------------------

@click.command()
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--timeout", "wait_for", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Give up after this long (exit status 3).")
@click.pass_context
def wait(ctx: click.Context, job_id: int, wait_for: float | None) -> None:
    """Wait until a job has nothing left to run.

    Exit status: 0 when every frame succeeded (or was eaten), 1 when frames are dead or the job
    was killed, 3 on timeout.
    """
    settings: Settings = ctx.find_object(Settings)
    try:
        row = settings.client().wait(job_id, timeout=wait_for)
    except TimeoutError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(3)
    click.echo(f"job {job_id} {row['status']}: {row['succeeded']}/{row['frames_total']} succeeded, "
               f"{row['dead']} dead, {row.get('eaten', 0)} eaten")
    if row["dead"] or row["status"] == "killed" or row["state"] != "FINISHED":
        ctx.exit(1)
