"""Printing: JSON, aligned tables, times, durations and sizes."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Iterable

import click


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def print_table(headers: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """Print rows aligned under headers; numbers are right-aligned."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    numeric = [bool(cells) and all(is_number(row[i]) for row in cells)
               for i in range(len(headers))]

    def line(values: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "  ".join(parts).rstrip()

    click.echo(line(headers))
    for row in cells:
        click.echo(line(row))


def print_record(row: dict[str, Any], times: Iterable[str] = ()) -> None:
    """Print one row as `key  value` lines; keys in `times` are shown as dates."""
    times = set(times)
    width = max((len(k) for k in row), default=0)
    for key, value in row.items():
        text = fmt_time(value) if key in times else cell(value)
        click.echo(f"{key.ljust(width)}  {text or '-'}")     # an empty value reads "-"


def cell(value: Any) -> str:
    """A value as table text: None is '-', booleans yes/no, floats with two decimals."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def is_number(text: str) -> bool:
    """Whether a cell reads as a number (or a used/total pair, or '-'): those align right."""
    return text == "-" or text.replace(".", "", 1).replace("/", "", 1).lstrip("-").isdigit()


def fmt_time(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def fmt_mb(nbytes: int | None) -> str:
    return "-" if nbytes is None else str(round(nbytes / (1024 * 1024)))


def shorten(text: Any, width: int = 40) -> str:
    """A command (string or argument list) cut to `width` characters."""
    text = text if isinstance(text, str) else " ".join(str(w) for w in text)
    return text if len(text) <= width else text[:width - 3] + "..."
