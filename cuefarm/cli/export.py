"""`cuefarm job export JOB`: a submitted job written back as a job file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cuefarm.cli.options import JOB, Settings, json_option, pass_settings


@click.command("export", short_help="Write a job back as a job file (YAML or JSON).")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write to this file instead of standard output.")
@json_option
@pass_settings
def export_job(settings: Settings, job_id: int, output: str | None, as_json: bool) -> None:
    """Print job JOB as a job file with its current settings (defaults left out), as YAML
    or (--json) JSON: `cuefarm submit` takes it and makes an equal job."""
    job = settings.client().export(job_id)
    if as_json:
        text = json.dumps(job, indent=2) + "\n"
    else:
        import yaml

        text = yaml.safe_dump(job, sort_keys=False, allow_unicode=True, width=100)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"{output}: cannot write: {exc}") from None
