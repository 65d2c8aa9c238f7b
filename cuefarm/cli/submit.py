"""`cuefarm submit`: read job files (JSON or YAML), check them, send them."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import click

from cuefarm import openjd, spec
from cuefarm.jobfiles import native
from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import print_json, print_table
from cuefarm.client import CueFarmError

FRAME_TOKENS = ("#FRAME#", "#FRAME_START#", "#FRAME_END#", "#ZFRAME#")


def load_jobs(path: str) -> list[Any]:
    """Read one job dict, or a list of them, from a JSON or YAML file ('-' is stdin)."""
    name = "<stdin>" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CueFarmError(f"{name}: cannot read: {exc}") from None
    if path.lower().endswith(".json"):
        try:
            data = json.loads(text, object_pairs_hook=_unique_keys)
        except (json.JSONDecodeError, DuplicateKey) as exc:
            raise CueFarmError(f"{name}: not valid JSON: {exc}") from None
    else:
        import yaml  # only submit needs it; YAML is a superset of JSON

        try:
            data = yaml.load(text, Loader=_yaml_loader())
        except yaml.YAMLError as exc:
            raise CueFarmError(f"{name}: not valid YAML: {exc}") from None
        # In YAML " #" starts a comment, so `command: render -f #FRAME#` silently loses its token.
        dumped = json.dumps(data, default=str)
        if any(text.count(token) > dumped.count(token) for token in FRAME_TOKENS):
            click.echo(f"warning: {name}: YAML read some frame tokens as comments (' #' starts a "
                       "comment); quote commands that use them", err=True)
    return data if isinstance(data, list) else [data]


class DuplicateKey(ValueError):
    """A key given twice in one mapping: the parsers would silently keep the last."""


def _unique_keys(pairs: list[tuple[Any, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"duplicate key {key!r}")
        out[key] = value
    return out


def _yaml_loader() -> type:
    """yaml.SafeLoader, refusing duplicate keys."""
    import yaml

    class UniqueKeyLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            # Only the keys written in this mapping: a merge (<<: *base) may be overridden.
            seen = set()
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    return UniqueKeyLoader


@click.command(short_help="Submit jobs from JSON or YAML files.",
               epilog="The keys of a job file are described in docs/job-file.md "
                      "(`cuefarm spec --reference` prints it).")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--check", is_flag=True, help="Validate and describe the jobs; submit nothing "
                                            "(without asking the supervisor).")
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE",
              help="A job parameter of an Open Job Description template (repeatable).")
@json_option
@pass_settings
def submit(settings: Settings, files: tuple[str, ...], check: bool, parameters: tuple[str, ...],
           as_json: bool) -> None:
    """Submit the jobs in FILES (JSON or YAML; one job or a list each); print their ids.
    A file may also hold an Open Job Description job template (jobtemplate-2023-09; its job
    parameters given with -p) or a Qube!-style job dict (with a `prototype`)."""
    values = openjd.parse_parameters(parameters)
    templates = 0
    jobs: list[Any] = []
    where: list[tuple[str, int]] = []   # (file, index in it) of each job sent
    # The frame limit is the supervisor's to enforce (it may be configured above the default):
    # a submission is checked here for everything else, its ranges counted, not expanded.
    # --check, which asks nothing, expands them to describe the tasks, up to the default limit.
    max_frames = spec.DEFAULT_MAX_FRAMES if check else sys.maxsize
    for path in files:
        name = "<stdin>" if path == "-" else path
        data = load_jobs(path)
        has_template = any(openjd.is_template(d) for d in data)
        templates += has_template
        try:
            data = native(data, values if has_template else None, "jobs",
                          None if path == "-" else Path(path).resolve().parent)
            specs = spec.validate_submission(data, max_frames, expand=check)
        except spec.SpecError as exc:
            raise spec.SpecError(f"{name}: {exc.field}", exc.message) from None
        jobs.extend(data)
        where.extend((name, i) for i in range(len(data)))
        if check:
            for js in specs:
                frames = sum(len(layer.frames) for layer in js.layers)
                dispatches = sum(len(layer.chunks()) for layer in js.layers)
                click.echo(f"{js.name}: project {js.project}, priority {js.priority}, "
                           f"{len(js.layers)} layer(s), {frames} frame(s) in {dispatches} task(s)")
    if values and not templates:
        raise spec.SpecError("-p", "job parameters are for Open Job Description templates; "
                                   "no file given is one")
    if check:
        return
    try:
        ids = settings.client().submit(jobs)
    except CueFarmError as exc:
        # The supervisor names jobs by their place in the whole submission: say the file's.
        m = re.fullmatch(r"jobs\[(\d+)\](.*)", exc.field or "")
        if m and int(m.group(1)) < len(where):
            name, i = where[int(m.group(1))]
            raise spec.SpecError(f"{name}: jobs[{i}]{m.group(2)}", str(exc)) from None
        raise
    if as_json:
        print_json(ids)
    else:
        for job_id in ids:
            click.echo(job_id)


@click.command("spec", short_help="Describe the keys of a job file.")
@click.option("--reference", is_flag=True,
              help="Print the whole job file reference as Markdown (docs/job-file.md).")
def spec_cmd(reference: bool) -> None:
    """List the keys of a job file, with their values and defaults; --reference prints the
    whole reference (meanings, dependencies, frame tokens) as Markdown."""
    if reference:
        click.echo(spec.reference(), nl=False)
        return
    for title, keys in (("job", spec.JOB_FIELDS), ("layer", spec.LAYER_FIELDS),
                        ("depends_on entry", spec.DEPENDENCY_FIELDS)):
        click.echo(f"{title} keys:")
        print_table(["  KEY", "VALUE", "DEFAULT"],
                    [[f"  {k.name}", spec.value_text(k).replace("`", ""),
                      spec.default_text(k).replace("`", "")] for k in keys.values()])
    click.echo("The meaning of each: `cuefarm spec --reference` (docs/job-file.md).")
