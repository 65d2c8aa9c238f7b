"""Job and frame control: pause, resume, kill, retry, eat, priority."""

from __future__ import annotations

import click

from cuefarm import frames
from cuefarm.cli.options import JOB, Settings, pass_settings, plural


FRAME_NUMBERS_MAX = 1_000_000


def _frame_numbers(ctx: click.Context, param: click.Parameter,
                   value: tuple[str, ...]) -> list[int]:
    """Frame numbers as users write them: '7', '7,9', '1-10', '1-10x2'; repeatable."""
    numbers: list[int] = []
    for text in (v.strip() for v in value):
        try:
            numbers += frames.expand(text, FRAME_NUMBERS_MAX - len(numbers))
        except frames.RangeError as exc:
            raise click.BadParameter(str(exc)) from None
    return list(dict.fromkeys(numbers))


def _job_action(name: str, verb: str, noun: str, help_text: str,
                frame_action: str | None = None, short_help: str | None = None,
                clear_bans: bool = False, more_memory: bool = False) -> click.Command:
    """A command acting on whole jobs (and, with `frame_action`, on chosen frames; with
    `clear_bans`, a --clear-bans flag; with `more_memory`, a --more-memory option)."""

    @click.argument("job_ids", metavar="JOB...", nargs=-1, required=True, type=JOB)
    @pass_settings
    def command(settings: Settings, job_ids: tuple[int, ...], frame: list[int] | None = None,
                layer: str | None = None, clear: bool = False, amount=None) -> None:
        client = settings.client()
        if amount is not None:
            from cuefarm.cli.wrangle import retry_more_memory
            if not frame or len(job_ids) != 1:
                raise click.UsageError("--more-memory retries chosen frames: one JOB and "
                                       "--frame N")
            return retry_more_memory(client, job_ids[0], layer, frame, amount)
        if frame or layer is not None:
            if not frame:
                raise click.UsageError("--layer goes with --frame N (the frames of that layer)")
            if len(job_ids) != 1:
                raise click.UsageError("--frame needs exactly one JOB")
            if clear:
                raise click.UsageError("--clear-bans acts on whole jobs; for chosen frames "
                                       "clear the bad hosts with `cuefarm job badhosts JOB "
                                       "--all` first")
            count = client.frame_control(frame_action, job_ids[0], layer=layer, numbers=frame)
            noun_ = "frame"
        else:
            kw = {"clear_bans": True} if clear else {}
            count = getattr(client, name)(list(job_ids), **kw)
            noun_ = noun
        click.echo(f"{verb} {plural(count, noun_)}" + (", bad hosts cleared" if clear else ""))

    if clear_bans:
        command = click.option(
            "--clear-bans", "clear", is_flag=True,
            help="Forget the jobs' bad hosts first, so the hosts that failed them run them "
                 "again (fix the cause first).")(command)

    if more_memory:
        from cuefarm.cli.wrangle import more_memory_option
        command = more_memory_option(command)

    if frame_action:
        command = click.option(
            "--layer", metavar="LAYER",
            help="The layer of the --frame numbers (needed when JOB has several layers)."
        )(command)
        command = click.option(
            "--frame", multiple=True, callback=_frame_numbers, metavar="N",
            help="Only these frame numbers of JOB, e.g. 7, 1-10 or 1-20x2 (repeat or use "
                 "commas); a chunk is acted on whole."
        )(command)
    return click.command(name, help=help_text, short_help=short_help)(command)


# Counts are what the supervisor reports: jobs for pause/resume, frames for the others.
pause = _job_action("pause", "paused", "job",
                    "Pause jobs: running frames finish, no new ones start.")
resume = _job_action("resume", "resumed", "job",
                     "Resume paused jobs; with --clear-bans, jobs the supervisor paused because "
                     "every host failed them run on those hosts again.", clear_bans=True)
kill = _job_action("kill", "killed", "frame",
                   "Kill jobs (running frames stop, the rest are eaten), or with --frame stop "
                   "frames and requeue them.", frame_action="kill",
                   short_help="Kill jobs or frames.")
retry = _job_action("retry", "requeued", "frame",
                    "Retry the dead frames of jobs, or with --frame run chosen frames again.",
                    frame_action="retry", short_help="Retry dead frames, or chosen frames.",
                    clear_bans=True, more_memory=True)
eat = _job_action("eat", "ate", "frame",
                  "Give up on the dead frames of jobs, or with --frame on chosen frames.",
                  frame_action="eat", short_help="Give up on dead frames, or chosen frames.")


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("job_id", metavar="JOB", type=JOB)
@click.argument("value", metavar="N", type=int)
@pass_settings
def priority(settings: Settings, job_id: int, value: int) -> None:
    """Set the priority of a job (higher runs first)."""
    count = settings.client().set_priority(job_id, value)
    click.echo(f"priority {value} set on {plural(count, 'job')}")


COMMANDS = [pause, resume, kill, retry, eat, priority]
