"""Scheduling for wranglers and admins: why work waits, project shares, limits, dependencies."""

from __future__ import annotations

import click

from cuefarm.cli.options import (DEPENDENCY, JOB, DefaultGroup, Settings, json_option,
                                 pass_settings)
from cuefarm.cli.output import print_json, print_table


@click.command()
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--layer", help="Only this layer.")
@click.option("--frame", "number", type=int, metavar="N", help="Only the frame that runs N.")
@json_option
@pass_settings
def why(settings: Settings, job_id: int, layer: str | None, number: int | None,
        as_json: bool) -> None:
    """Why frames of a job are not running, one reason per line."""
    answer = settings.client().why(job_id, layer, number)
    if as_json:
        return print_json(answer)
    for reason in answer["reasons"]:
        click.echo(reason)


# --- projects -----------------------------------------------------------------------------------

@click.group(invoke_without_command=True, short_help="List projects and their fair share.")
@json_option
@click.pass_context
def projects(ctx: click.Context, as_json: bool) -> None:
    """List projects: guaranteed and maximum slots, slots in use, frames waiting."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Settings).client().projects()
    if as_json:
        return print_json(rows)
    print_table(["NAME", "GUARANTEED", "MAX", "SLOTS USED", "WAITING"],
                [[r["name"], r["guaranteed"], r["max_slots"], r["slots_used"], r["waiting"]]
                 for r in rows])


@projects.command("set")
@click.argument("name")
@click.option("--guaranteed", type=int, metavar="N",
              help="Slots the project gets before others exceed theirs.")
@click.option("--max", "max_slots", type=int, metavar="M", help="The most slots it may use.")
@click.option("--unlimited", is_flag=True, help="Remove the maximum.")
@pass_settings
def set_project(settings: Settings, name: str, guaranteed: int | None, max_slots: int | None,
                unlimited: bool) -> None:
    """Set the fair share of project NAME (created if new); only the options given change."""
    if max_slots is not None and unlimited:
        raise click.UsageError("--max and --unlimited exclude each other")
    if guaranteed is None and max_slots is None and not unlimited:
        raise click.UsageError("give --guaranteed, --max or --unlimited")
    settings.client().set_project(name, guaranteed, max_slots, unlimited)
    parts = []
    if guaranteed is not None:
        parts.append(f"guaranteed {guaranteed}")
    if max_slots is not None or unlimited:
        parts.append(f"max {'none' if unlimited else max_slots}")
    click.echo(f"project {name}: {', '.join(parts)}")


# --- limits -------------------------------------------------------------------------------------

@click.group(invoke_without_command=True, short_help="List limits (licence counters).")
@json_option
@click.pass_context
def limits(ctx: click.Context, as_json: bool) -> None:
    """List limits: named counters, such as licences, that frames need to run."""
    if ctx.invoked_subcommand is not None:
        return
    rows = ctx.find_object(Settings).client().limits()
    if as_json:
        return print_json(rows)
    print_table(["NAME", "IN USE", "PER HOST"],
                [[r["name"], f"{r['in_use']}/{r['max']}", r["per_host"]] for r in rows])


@limits.command("set", context_settings={"ignore_unknown_options": True})  # a COUNT of -3
@click.argument("name")
@click.argument("count", type=int)
@click.option("--per-host/--per-frame", "per_host", default=None,
              help="Count hosts using it (node-locked licences) or running frames "
                   "[default: per frame for a new limit, unchanged otherwise].")
@pass_settings
def set_limit(settings: Settings, name: str, count: int, per_host: bool | None) -> None:
    """Create limit NAME, or change it: at most COUNT running frames (or hosts) hold it."""
    settings.client().set_limit(name, count, per_host)
    how = "" if per_host is None else " per host" if per_host else " per frame"
    click.echo(f"limit {name}: {count}{how}")


@limits.command("delete")
@click.argument("name")
@pass_settings
def delete_limit(settings: Settings, name: str) -> None:
    """Delete limit NAME (refused while unfinished layers need it)."""
    settings.client().delete_limit(name)
    click.echo(f"deleted limit {name}")


# --- dependencies -------------------------------------------------------------------------------

@click.group(cls=DefaultGroup, default_command="list",
             short_help="List a job's dependencies, or release them by hand.")
def deps() -> None:
    """List the dependencies of a job (`cuefarm deps JOB`), or release one by hand."""


@deps.command("list")
@click.argument("job_id", metavar="JOB", type=JOB)
@json_option
@pass_settings
def list_deps(settings: Settings, job_id: int, as_json: bool) -> None:
    """List the dependencies of a job: what its layers wait for."""
    rows = settings.client().dependencies(job_id)
    if as_json:
        return print_json(rows)
    print_table(["ID", "KIND", "LAYER", "TARGET JOB", "TARGET LAYER", "SATISFIED", "TARGET DEAD"],
                [[r["id"], r["kind"], r["layer"], r["target_job_id"], r["target_layer"],
                  r["satisfied"], r["target_dead"]] for r in rows])


@deps.command("satisfy", short_help="Release a dependency by hand.")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.argument("dep_id", metavar="DEP_ID", type=DEPENDENCY)
@pass_settings
def satisfy(settings: Settings, job_id: int, dep_id: int) -> None:
    """Let what waits on dependency DEP_ID of JOB run as if its target were done."""
    settings.client().satisfy_dependency(job_id, dep_id)
    click.echo(f"satisfied dependency {dep_id} of job {job_id}")


@deps.command("drop", short_help="Remove a dependency.")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.argument("dep_id", metavar="DEP_ID", type=DEPENDENCY)
@pass_settings
def drop(settings: Settings, job_id: int, dep_id: int) -> None:
    """Remove dependency DEP_ID of JOB (what waited runs unless something else holds it)."""
    settings.client().drop_dependency(job_id, dep_id)
    click.echo(f"dropped dependency {dep_id} of job {job_id}")
