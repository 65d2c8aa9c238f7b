"""The layers of a job in the submit dialog: what only a job of several layers needs.

Each layer is edited in the dialog's one set of layer fields; the others are kept as the raw
texts and numbers of those fields (a "form"), so switching layers loses nothing, not even a
value that does not validate yet.  Checks across layers (a name used twice, waiting for a
layer that is not there, a cycle) use `cuefarm.spec.validate_job` like the rest of the form.

A job file written here is the job dict the dialog would submit, as YAML or JSON, which is
what `cuefarm submit FILE` reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from cuefarm.spec import SpecError, validate_job

ENV_LINE = re.compile(r"\s*([^=\s]*)\s*=(.*)")
LAYER_PATH = re.compile(r"job\.layers\[(\d+)\](?:\.(\w+))?")


def parse_env(text: str) -> tuple[dict[str, str], str]:
    """"A=1\\nB = two" -> ({"A": "1", "B": "two"}, ""); a line that is not NAME=value gives
    ({...}, what is wrong).  Names are checked by validate_job."""
    env: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = ENV_LINE.fullmatch(line)
        if not m or not m.group(1):
            return env, f"line {n}: write NAME=value, one per line"
        name = m.group(1)
        if name in env:
            return env, f"line {n}: {name} is set twice"
        env[name] = m.group(2).strip()
    return env, ""


def env_text(env: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in env.items())


def layer_names(text: str) -> list[str]:
    """"render, comp" -> ["render", "comp"] (the layers of this job a layer waits for)."""
    return [w for w in re.split(r"[,\s]+", text) if w]


def unique_name(taken: list[str], stem: str = "layer") -> str:
    """A layer name not in `taken`: layer2, layer3, ..."""
    n = len(taken) + 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def cross_layer_errors(names: list[str], after: list[list[str]]) -> dict[int, dict[str, str]]:
    """Errors that need every layer: a name used twice, waiting for a layer not in the job or
    for itself, a cycle.  {layer index: {"layer_name" or "after": message}}."""
    skeleton = {"name": "x", "layers": [
        {"name": name or f"unnamed{i}", "command": "true", "range": "1",
         **({"depends_on": deps} if deps else {})}
        for i, (name, deps) in enumerate(zip(names, after))]}
    found: dict[int, dict[str, str]] = {}
    for _ in range(4 * len(names) + 1):
        try:
            validate_job(skeleton, expand=False)
            break
        except SpecError as exc:
            m = LAYER_PATH.fullmatch(exc.field.split(".depends_on")[0]
                                     if ".depends_on" in exc.field else exc.field)
            if exc.message.startswith("dependency cycle"):
                # Every layer on the cycle says so; the cycle is broken to look further.
                cycle = exc.message.split(": ", 1)[1].split(" -> ")
                for name in set(cycle):
                    i = names.index(name) if name in names else 0
                    found.setdefault(i, {})["after"] = exc.message
                layer = skeleton["layers"][names.index(cycle[0])]
                layer.pop("depends_on", None)
                continue
            if m is None:
                break
            i = int(m.group(1))
            layer = skeleton["layers"][i]
            if ".depends_on" in exc.field:
                found.setdefault(i, {})["after"] = exc.message
                layer.pop("depends_on", None)
            elif m.group(2) == "name":
                found.setdefault(i, {})["layer_name"] = exc.message
                layer["name"] = f"unnamed{i}_{len(found)}"
            else:
                break
    return found


def write_job_file(job: dict[str, Any], path: str | Path) -> Path:
    """Write `job` as `cuefarm submit` reads it: JSON for a .json name, YAML otherwise."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(job, indent=2) + "\n"
    else:
        import yaml
        text = yaml.safe_dump(job, sort_keys=False, default_flow_style=False,
                              allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path
