"""Comments on jobs and hosts: `cuefarm comment` adds (or deletes) one, `cuefarm comments`
lists them with author and time."""

from __future__ import annotations

import click

from cuefarm.cli.options import JOB, Settings, json_option, pass_settings
from cuefarm.cli.output import fmt_time, print_json


def _subject(args: tuple[str, ...], host: str | None, want_text: bool
             ) -> tuple[int | None, str | None]:
    """(job id, text) from the arguments: JOB [TEXT], or only [TEXT] with --host."""
    need = (0 if host else 1) + (1 if want_text else 0)
    usage = ("--host HOST" if host else "JOB") + (" TEXT" if want_text else "")
    if len(args) != need:
        raise click.UsageError(f"give {usage}" + (" (quote the text)" if want_text else ""))
    if host:
        return None, args[0] if want_text else None
    job_id = JOB.convert(args[0], None, None)
    return job_id, args[1] if want_text else None


@click.command(short_help="Leave a comment on a job or a host.")
@click.argument("args", nargs=-1, metavar="JOB TEXT | --host HOST TEXT")
@click.option("--host", metavar="HOST", help="Comment on this host instead of a job.")
@click.option("--delete", "delete_id", type=click.IntRange(1), metavar="ID",
              help="Delete comment ID instead (your own; admins any).")
@pass_settings
def comment(settings: Settings, args: tuple[str, ...], host: str | None,
            delete_id: int | None) -> None:
    """Leave a comment on JOB (or on a host with --host HOST): a note others see in the GUI
    and in `cuefarm comments`, signed with the user the supervisor takes you for.  Text "-"
    reads it from standard input."""
    client = settings.client()
    if delete_id is not None:
        if args or host:
            raise click.UsageError("--delete ID takes nothing else")
        client.delete_comment(delete_id)
        click.echo(f"comment {delete_id} deleted")
        return
    job_id, text = _subject(args, host, want_text=True)
    if text == "-":
        text = click.get_text_stream("stdin").read()
    comment_id = client.add_comment(text, job_id, host)
    where = f"host {host}" if host else f"job {job_id}"
    click.echo(f"comment {comment_id} on {where}")


@click.command(short_help="List the comments on a job or a host.")
@click.argument("args", nargs=-1, metavar="JOB | --host HOST")
@click.option("--host", metavar="HOST", help="The comments on this host instead of a job.")
@json_option
@pass_settings
def comments(settings: Settings, args: tuple[str, ...], host: str | None, as_json: bool) -> None:
    """List the comments on JOB (or on a host with --host HOST), oldest first, with their
    id, author and time."""
    job_id, _ = _subject(args, host, want_text=False)
    rows = settings.client().comments(job_id, host)
    if as_json:
        return print_json(rows)
    if not rows:
        click.echo("no comments")
        return
    for r in rows:
        click.echo(f"#{r['id']}  {r['author']}  {fmt_time(r['created_at'])}")
        for line in r["text"].splitlines() or [""]:
            click.echo(f"    {line}")
