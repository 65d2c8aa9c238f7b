"""PipelineFX Qube!-style submit dicts as CueFarm jobs.

A Qube! job dict (what `qb.submit([job])` takes) is recognised by its `prototype` key:

    {"name": "shot10", "prototype": "cmdrange", "cpus": 10, "priority": 100,
     "package": {"cmdline": "render -s QB_FRAME_START -e QB_FRAME_END scene.ma",
                 "range": "1-100", "rangeExecution": "chunks:5"},
     "reservations": "host.processors=2", "requirements": "host.memory >= 8000"}

It becomes a job of one layer.  `QB_FRAME_NUMBER`, `QB_FRAME_START` and `QB_FRAME_END` in the
command line become CueFarm's frame tokens; Qube! priorities (1 is the most urgent) become
CueFarm's (higher runs first) as 10000 - priority; `cpus` (how many instances run at once)
becomes `max_slots` counted in instances.  A key or value CueFarm has no meaning for is refused
with a SpecError naming it, never dropped.
"""

from __future__ import annotations

import re
from typing import Any

from cuefarm import spec

PROTOTYPES = ("cmdrange", "cmdline")
JOB_KEYS = {"name", "prototype", "package", "agenda", "range", "cpus", "priority",
            "reservations", "requirements", "hosts", "omithosts", "env", "cwd", "retrywork",
            "project", "timeout"}
PACKAGE_KEYS = {"cmdline", "range", "rangeExecution", "padding"}
TOKENS = {"QB_FRAME_NUMBER": "#FRAME#", "QB_FRAME_START": "#FRAME_START#",
          "QB_FRAME_END": "#FRAME_END#"}
QUBE_PRIORITY_BASE = 10_000


def is_qube(d: Any) -> bool:
    """Whether a loaded document is a Qube!-style job dict."""
    return isinstance(d, dict) and "prototype" in d


def to_job(d: dict[str, Any], path: str = "job") -> dict[str, Any]:
    """The CueFarm job dict for one Qube!-style job dict; SpecError naming the key at fault."""
    extra = sorted(set(d) - JOB_KEYS, key=str)
    if extra:
        raise spec.SpecError(f"{path}.{extra[0]}", f"the Qube! key {extra[0]!r} is not "
                             f"supported (supported: {', '.join(sorted(JOB_KEYS))})")
    prototype = d.get("prototype")
    if prototype not in PROTOTYPES:
        raise spec.SpecError(f"{path}.prototype", f"{prototype!r}: only the "
                             f"{' and '.join(PROTOTYPES)} prototypes are supported")
    package = d.get("package")
    if not isinstance(package, dict):
        raise spec.SpecError(f"{path}.package", "a Qube! job needs a package mapping with a "
                                                "cmdline")
    extra = sorted(set(package) - PACKAGE_KEYS, key=str)
    if extra:
        raise spec.SpecError(f"{path}.package.{extra[0]}", f"the package key {extra[0]!r} is "
                             f"not supported (supported: {', '.join(sorted(PACKAGE_KEYS))})")
    cmdline = package.get("cmdline")
    if not isinstance(cmdline, str) or not cmdline.strip():
        raise spec.SpecError(f"{path}.package.cmdline", "the command line is a non-empty string")
    padding = package.get("padding", 1)
    if padding not in (1, 4, "1", "4"):
        raise spec.SpecError(f"{path}.package.padding", f"{padding!r}: frame numbers are "
                                                        "padded to 1 or 4 digits")
    tokens = dict(TOKENS)
    if int(padding) == 4:
        tokens["QB_FRAME_NUMBER"] = "#ZFRAME#"
    command = re.sub("|".join(sorted(tokens, key=len, reverse=True)),
                     lambda m: tokens[m.group(0)], cmdline)
    layer: dict[str, Any] = {"name": "cmd", "command": command}
    if prototype == "cmdline":
        for key in ("agenda", "range"):
            if key in d or key in package:
                raise spec.SpecError(f"{path}.{key}", "a cmdline job runs once: it has no "
                                                      "frame range (use cmdrange)")
        layer["range"] = "1"
    else:
        layer["range"] = _agenda(d, package, path)
        layer["chunk"] = _chunk(package.get("rangeExecution", "individual"),
                                f"{path}.package.rangeExecution")
    job: dict[str, Any] = {"name": d.get("name"), "layers": [layer]}
    if "name" not in d:
        raise spec.SpecError(f"{path}.name", "is required")
    if "project" in d:
        job["project"] = d["project"]
    if "priority" in d:
        prio = d["priority"]
        if isinstance(prio, bool) or not isinstance(prio, int) or not 1 <= prio <= 9999:
            raise spec.SpecError(f"{path}.priority", f"{prio!r}: a Qube! priority is a whole "
                                                     "number from 1 (most urgent) to 9999")
        job["priority"] = QUBE_PRIORITY_BASE - prio
    if "cpus" in d:
        cpus = d["cpus"]
        if isinstance(cpus, bool) or not isinstance(cpus, int) or cpus < 1:
            raise spec.SpecError(f"{path}.cpus", f"{cpus!r}: cpus (instances at once) is a "
                                                 "whole number of at least 1")
        job["max_slots"] = cpus
    for qube_key, key in (("reservations", "reservations"), ("requirements", "requirements"),
                          ("hosts", "hosts"), ("omithosts", "omit_hosts"), ("env", "env"),
                          ("cwd", "cwd"), ("retrywork", "max_retries"), ("timeout", "timeout")):
        if qube_key in d:
            layer[key] = d[qube_key]
    if isinstance(d.get("requirements"), str):
        # Qube! writes `host.os=linux`, `host.memory>8000`: one comparison per term.
        layer["requirements"] = re.sub(r"(?<![<>=!])=(?!=)", "==", d["requirements"])
    # The slot count is per instance: max_slots counts instances only if each takes one.
    if "cpus" in d and "reservations" in d and "host.processors" in str(d["reservations"]):
        raise spec.SpecError(f"{path}.cpus", "cpus together with host.processors reservations "
                                             "is not supported (max_slots counts slots)")
    try:
        spec.validate_job(job, path, expand=False)
    except spec.SpecError as exc:
        raise spec.SpecError(_qube_field(exc.field, path), exc.message) from None
    return job


def _qube_field(field: str, path: str) -> str:
    """A field of the mapped job as the Qube! dict's key."""
    layer = f"{path}.layers[0]."
    if field.startswith(layer):
        rest = field[len(layer):]
        names = {"command": "package.cmdline", "range": "agenda", "omit_hosts": "omithosts",
                 "max_retries": "retrywork"}
        key = rest.split(".")[0].split("[")[0]
        return f"{path}.{names.get(key, key)}{rest[len(key):]}"
    return field.replace(f"{path}.max_slots", f"{path}.cpus")


def _agenda(d: dict[str, Any], package: dict[str, Any], path: str) -> str:
    given = [k for k in ("agenda", "range") if k in d] + (["range"] if "range" in package else [])
    if len(given) != 1:
        raise spec.SpecError(f"{path}.agenda", "give the frames once: agenda, range or "
                                               "package.range")
    where = f"{path}.package.range" if "range" in package else f"{path}.{given[0]}"
    value = package.get("range", d.get(given[0]))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        numbers = []
        for i, item in enumerate(value):
            name = item.get("name") if isinstance(item, dict) else item
            try:
                numbers.append(int(str(name)))
            except ValueError:
                raise spec.SpecError(f"{where}[{i}]", f"{name!r}: agenda items are frame "
                                                      "numbers") from None
        return ",".join(str(n) for n in numbers)
    raise spec.SpecError(where, "frames are a range string ('1-100') or a list of frames")


def _chunk(value: Any, path: str) -> int:
    if value == "individual":
        return 1
    m = re.fullmatch(r"chunks:([0-9]{1,6})", str(value))
    if not m or int(m.group(1)) < 1:
        raise spec.SpecError(path, f"{value!r}: supported are 'individual' and 'chunks:N'")
    return int(m.group(1))
