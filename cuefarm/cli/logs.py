"""`cuefarm log`: print (and follow) the log of one attempt of a frame."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from cuefarm.cli.options import JOB, Settings, pass_settings
from cuefarm.client import Client
from cuefarm.states import FrameState

LOG_PAGE = 256 * 1024
FOLLOW_INTERVAL = 0.5


def _attempt_number(attempt_id: str) -> int | None:
    _, _, n = attempt_id.rpartition(".")
    return int(n) if n.isdigit() else None


def _frame_row(client: Client, job_id: int, layer: str | None, number: int
               ) -> dict[str, Any] | None:
    """The frame (chunk) of `layer` that runs frame `number`."""
    import fileseq

    for f in client.frames(job_id, layer):
        lo, hi = sorted((f["frame_start"], f["frame_end"]))
        # The bounds alone are not enough: the chunks of "1-9x2,2-10x2" overlap.
        if lo <= number <= hi and number in fileseq.FrameSet(f["frames"]):
            return f
    return None


@click.command("log")
@click.argument("job_id", metavar="JOB", type=JOB)
@click.option("--layer", help="The layer of the frame (needed when the job has several).")
@click.option("--frame", "number", required=True, type=int, help="The frame number.")
@click.option("--attempt", type=click.IntRange(min=1), help="Attempt number (default: the latest).")
@click.option("--tail", type=click.IntRange(min=1), metavar="BYTES",
              help="Only the last BYTES of the log.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing while the frame runs.")
@pass_settings
def log_cmd(settings: Settings, job_id: int, layer: str | None, number: int, attempt: int | None,
            tail: int | None, follow: bool) -> None:
    """Print the log of one attempt of a frame."""
    client = settings.client()
    offset = -tail if tail else 0
    while True:
        chunk = client.log(job_id, layer, number, attempt, offset, LOG_PAGE)
        # Pin the attempt so later pages (and --follow) read the same file even if a retry starts.
        attempt = attempt or _attempt_number(chunk["attempt_id"])
        data = chunk["data"]
        if data:
            # Raw bytes: a character split across two pages comes out whole.
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        offset = chunk["offset"] + (nbytes := len(data))
        if offset < chunk["size"] and nbytes:
            continue  # more is already there
        if not follow:
            return
        frame = _frame_row(client, job_id, layer, number)
        if (frame is None or frame["state"] != FrameState.RUNNING.value
                or (attempt is not None and frame["attempt"] != attempt)):
            # One more read catches what was written between the last page and the stop.
            follow = False
            continue
        time.sleep(FOLLOW_INTERVAL)
