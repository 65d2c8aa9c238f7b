"""Wrangling a layer's queue and a job's dependencies: done, front, stagger, retry with more
memory (`retry --more-memory`), deps add and deps on (what waits on a job)."""

from __future__ import annotations

import click

from cuefarm.cli.control import _frame_numbers
from cuefarm.cli.options import JOB, Settings, json_option, pass_settings, plural
from cuefarm.cli.output import print_json, print_table

_FRAME_HELP = ("Frame numbers of JOB, e.g. 7, 1-10 or 1-20x2 (repeat or use commas); a chunk "
               "is acted on whole.")
_LAYER_HELP = "The layer of the --frame numbers (needed when JOB has several layers)."


def _frames(command):
    command = click.option("--layer", metavar="LAYER", help=_LAYER_HELP)(command)
    return click.option("--frame", multiple=True, callback=_frame_numbers, metavar="N",
                        help=_FRAME_HELP)(command)


@click.command("done", short_help="Mark frames done without running them.")
@click.argument("job_id", metavar="JOB", type=JOB)
@_frames
@pass_settings
def done(settings: Settings, job_id: int, frame: list[int], layer: str | None) -> None:
    """Mark frames of JOB done: they count as complete (EATEN) and what waits on them runs.
    Running frames are killed first and marked done when their process has ended."""
    if not frame:
        raise click.UsageError("name the frames: --frame N (and --layer LAYER)")
    count = settings.client().frame_control("done", job_id, layer=layer, numbers=frame)
    click.echo(f"marked {plural(count, 'frame')} done")


@click.command("front", short_help="Dispatch frames next.")
@click.argument("job_id", metavar="JOB", type=JOB)
@_frames
@pass_settings
def front(settings: Settings, job_id: int, frame: list[int], layer: str | None) -> None:
    """Move frames of JOB that have not started to the front of their layer's queue: they are
    dispatched next, in the order they had."""
    if not frame:
        raise click.UsageError("name the frames: --frame N (and --layer LAYER)")
    count = settings.client().frames_to_front(job_id, layer=layer, numbers=frame)
    click.echo(f"moved {plural(count, 'frame')} to the front")


@click.command("stagger", short_help="Spread a layer's waiting frames: every Nth first.")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--every", type=click.IntRange(min=2), required=True, metavar="N",
              help="Every Nth frame first: 1, 1+N, 1+2N, ..., then 2, 2+N, ...")
@_frames
@pass_settings
def stagger(settings: Settings, job_id: int, every: int, frame: list[int],
            layer: str | None) -> None:
    """Reorder the waiting frames of a layer of JOB (or only the --frame numbers) so that every
    Nth is dispatched first: a quick look at the whole sequence before the rest."""
    count = settings.client().stagger(job_id, every, layer=layer, numbers=frame)
    click.echo(f"staggered {plural(count, 'frame')} every {every}")


def _memory(ctx: click.Context, param: click.Parameter, value: str | None):
    """'x1.5' or '1.5x': a factor; '8000' or '8000MB': megabytes."""
    if value is None:
        return None
    text = value.strip().lower()
    try:
        if text.startswith("x") or text.endswith("x"):
            return ("factor", float(text.strip("x")))
        return ("memory", int(text.removesuffix("mb")))
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a factor (x1.5) nor MB (8000)") from None


more_memory_option = click.option(
    "--more-memory", "amount", callback=_memory, is_flag=False, flag_value="x1.5",
    metavar="[x1.5|MB]",
    help="With --frame: raise the layer's memory reservation first, by a factor (x1.5 when "
         "no value is given) of the larger of the reservation and the frames' peak, or to "
         "the MB given; the layer's frames still to run get it too.")


def retry_more_memory(client, job_id: int, layer: str | None, frame: list[int],
                      amount: tuple[str, float | int]) -> None:
    """`cuefarm retry JOB --frame N --more-memory [x1.5|MB]`."""
    got = client.retry_more_memory(job_id, layer=layer, numbers=frame,
                                   **{amount[0]: amount[1]})
    for lay in got["layers"]:
        click.echo(f"layer {lay['layer']}: memory {lay['was']} MB -> {lay['memory']} MB")
    click.echo(f"requeued {plural(got['retried'], 'frame')}")


@click.command("add", short_help="Make a job wait for another job, layer or frames.")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.argument("target", metavar="TARGET")
@click.option("--layer", metavar="LAYER", help="Only this layer of JOB waits (default: all).")
@click.option("--per-frame", is_flag=True,
              help="Frame by frame: each frame waits for the frame of TARGET's layer with its "
                   "number (needs --layer and TARGET as JOB/LAYER).")
@pass_settings
def add_dep(settings: Settings, job_id: int, target: str, layer: str | None,
            per_frame: bool) -> None:
    """Make JOB (or its --layer) wait for TARGET: a job (`12`), a layer of one (`12/comp`)
    or, with --per-frame, that layer's frames of the same numbers.  Frames of TARGET already
    done count as done."""
    job_text, _, target_layer = target.partition("/")
    try:
        target_job = JOB.convert(job_text, None, None)
    except click.BadParameter as exc:
        raise click.BadParameter(f"TARGET is JOB or JOB/LAYER: {exc.message}") from None
    if per_frame and not target_layer:
        raise click.UsageError("--per-frame waits for a layer: TARGET is JOB/LAYER")
    kind = "frame" if per_frame else ("layer" if target_layer else "job")
    count = settings.client().add_dependency(kind, job_id, target_job, layer=layer,
                                             target_layer=target_layer or None)
    click.echo(f"job {job_id}{'/' + layer if layer else ''} waits for {target}"
               f"{' frame by frame' if per_frame else ''} ({count} added)")


@click.command("on", short_help="List what waits on a job.")
@click.argument("job_id", metavar="JOB", type=JOB)
@json_option
@pass_settings
def dependants(settings: Settings, job_id: int, as_json: bool) -> None:
    """List the dependencies of other jobs (and layers) on JOB: what waits for it."""
    rows = settings.client().dependants(job_id)
    if as_json:
        return print_json(rows)
    print_table(["ID", "KIND", "JOB", "NAME", "LAYER", "WAITS FOR", "SATISFIED"],
                [[r["id"], r["kind"], r["job_id"], r["job_name"], r["layer"],
                  r["target_layer"] or "(whole job)", r["satisfied"]] for r in rows])


@click.command("range", short_help="Give a layer a new frame range while none has run.")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.argument("layer_name", metavar="LAYER")
@click.argument("frange", metavar="RANGE")
@click.option("--chunk", type=int, metavar="N", help="Frames per process (default: as it was).")
@pass_settings
def layer_range(settings: Settings, job_id: int, layer_name: str, frange: str,
                chunk: int | None) -> None:
    """Make the frames of LAYER of JOB again from RANGE (e.g. 1-100, 1-100x2) and --chunk,
    while none of them has run."""
    count = settings.client().set_layer_range(job_id, layer_name, frange, chunk)
    click.echo(f"job {job_id} layer {layer_name}: range {frange}, {plural(count, 'frame')}")


COMMANDS = [done, front, stagger]
DEPS_COMMANDS = [add_dep, dependants]
LAYER_COMMANDS = [layer_range]
