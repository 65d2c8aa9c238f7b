"""What the commands share: the global settings and client, id and list parameters, and a group
whose first argument may be an id instead of a subcommand."""

from __future__ import annotations

import re
from typing import Any, Callable

import click

from cuefarm.client import Client


class Settings:
    """Global options, and the client built from them on first use."""

    def __init__(self, address: str, timeout: float,
                 connect: Callable[[str, float], Client] | None = None):
        """`connect(address, timeout)` makes the client (Client by default; a program
        embedding the CLI may give another as the click context's obj: {"connect": fn})."""
        self.address = address
        self.timeout = timeout
        self.connect = connect or (lambda address, timeout: Client(address, timeout=timeout))
        self._client: Client | None = None
        self.command: click.Context | None = None

    def client(self) -> Client:
        """The connection to the supervisor, opened on first use and closed with the context."""
        # The command asking: a refusal then names the flag its user typed (user_words).
        self.command = click.get_current_context(silent=True)
        if self._client is None:
            self._client = self.connect(self.address, self.timeout)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


class Id(click.ParamType):
    """A database id (of a job, a frame, a dependency): a positive whole number."""

    def __init__(self, noun: str, hint: str = ""):
        self.name = noun
        self.hint = hint

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
        text = str(value).strip()
        # ASCII digits only: int() would also take '１２' and '1_000'.
        if text.isascii() and text.isdigit() and len(text) < 19 and int(text) > 0:
            return int(text)
        self.fail(f"{value!r} is not a {self.name} id (a positive whole number){self.hint}",
                  param, ctx)


JobId = Id  # the name the first CLI used
JOB = Id("job")
DEPENDENCY = Id("dependency", " (see `cuefarm deps JOB`)")
pass_settings = click.make_pass_decorator(Settings)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def user_words(command: click.Context | None, field: str | None) -> str | None:
    """The option a user typed for the request field a refusal names (`values.max_slots` ->
    `--max-slots`, `start` -> `--from`); None when the field is an argument (the message names
    its value) or nothing the user typed (a name of the protocol's, not theirs)."""
    if not field or command is None:
        return None
    key = re.sub(r"(\[\d+\])+$", "", field.rsplit(".", 1)[-1])    # values.tags[0] -> tags
    for param in command.command.params:
        names = {param.name, *(o.lstrip("-").replace("-", "_") for o in param.opts)}
        if key in names:
            return max(param.opts, key=len) if isinstance(param, click.Option) else None
    return None


def comma_list(text: str) -> list[str]:
    """'a, b,,c' -> ['a', 'b', 'c']; '' -> [] (which clears a list setting)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


class DefaultGroup(click.Group):
    """A group whose arguments go to `default_command` unless they start with a subcommand.

    `cuefarm job 12` then shows job 12 while `cuefarm job set 12 --priority 80` changes it:
    a group argument would have read "set" as the job id.
    """

    def __init__(self, *args: Any, default_command: str, **kwargs: Any):
        kwargs.setdefault("subcommand_metavar", "JOB | COMMAND [ARGS]...")
        super().__init__(*args, **kwargs)
        self.default_command = default_command

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        first = args[0] if args else None
        if first not in self.commands and first not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)
