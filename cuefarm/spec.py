"""Job specs: validate a submitted job dict and normalise it.

A job is a plain dict (from Python, JSON or YAML).  Its shape, types, bounds and defaults are
the job file Structs' (`cuefarm.jobkeys`, checked by msgspec); here are the rules msgspec
cannot express: frame ranges (counted, and capped per job), commands, `slots` written as `N+`
or `all`, Qube! reservations, dependencies between layers (and their cycles), rules across
keys.  Validation names the exact field at fault (`jobs[0].layers[1].range`) and accepts
nothing it does not understand, so a typo never silently becomes a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

import msgspec

from cuefarm import frames as franges
from cuefarm import requirements as reqs
from cuefarm.jobkeys import (ENV_NAME_PATTERN, HOST_PATTERN, INT_RE, KEYS, MAX_OUTPUTS,
                             MAX_SECONDS, NAME_PATTERN, OS_NAMES, REQUIRED, TAG_PATTERN,
                             DependencyFile, JobFile, Key, LayerFile, SpecError, as_whole,
                             convert, whole_keys)
from cuefarm.specdoc import default_text, reference, value_text

# What callers use from here (some of it defined in jobkeys and specdoc).
__all__ = ["DEFAULT_MAX_FRAMES", "DEPENDENCY_FIELDS", "ENV_NAME_RE", "INT_RE", "JOB_EDITABLE",
           "JOB_FIELDS", "JOB_KEYS", "LAYER_EDITABLE", "LAYER_FIELDS", "LAYER_KEYS",
           "MAX_OUTPUTS", "MAX_SECONDS", "NAME_RE", "OS_NAMES", "PATTERN_RE", "REQUIRED",
           "SLOTS_RE", "TAG_RE", "Dependency", "JobSpec", "Key", "LayerSpec", "SpecError",
           "default_text", "describe_dependency", "expand_frames", "reference", "validate_job",
           "validate_job_changes", "validate_layer_changes", "validate_submission",
           "value_text"]

# The patterns msgspec checks, for callers that check one name (with fullmatch).
NAME_RE = re.compile(NAME_PATTERN, re.ASCII)
ENV_NAME_RE = re.compile(ENV_NAME_PATTERN, re.ASCII)
TAG_RE = re.compile(TAG_PATTERN, re.ASCII)
PATTERN_RE = re.compile(HOST_PATTERN, re.ASCII)
SLOTS_RE = re.compile(r"([0-9]{1,4})(\+?)", re.ASCII)
DEFAULT_MAX_FRAMES = 1_000_000

JOB_FIELDS = KEYS[JobFile]
LAYER_FIELDS = KEYS[LayerFile]
DEPENDENCY_FIELDS = KEYS[DependencyFile]
JOB_KEYS = set(JOB_FIELDS)
LAYER_KEYS = set(LAYER_FIELDS)

# Keys written more loosely than their type: whole numbers as strings ("12"), lists of names
# as one comma-separated string.
_JOB_WHOLE = whole_keys(JobFile)
_LAYER_WHOLE = whole_keys(LayerFile)
_DEPENDENCY_WHOLE = whole_keys(DependencyFile)
_NAME_LISTS = frozenset({"tags", "hosts", "omit_hosts", "limits"})


@dataclass
class Dependency:
    """What a layer waits for: a layer of this job (whole, or frame by frame), another job, or
    a layer of another job."""

    kind: str                      # "layer" | "frame" | "job"
    layer: str | None = None
    job: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        if self.job is not None:
            d["job"] = self.job
        if self.layer is not None:
            d["layer"] = self.layer
        if self.kind == "frame":
            d["per_frame"] = True
        return d


def describe_dependency(d: dict[str, Any] | str) -> str:
    """A dependency as stored (Dependency.to_dict) in words: `render`, `render (per frame)`,
    `job 12` or `job 12/comp`."""
    if isinstance(d, str):
        return d
    if d.get("job") is not None:
        return f"job {d['job']}" + (f"/{d['layer']}" if d.get("layer") else "")
    return f"{d.get('layer')}" + (" (per frame)" if d.get("per_frame") else "")


@dataclass
class LayerSpec:
    name: str
    command: list[str] | str
    range: str
    frames: list[int]
    chunk: int = 1
    slots: int = 1                 # at least this many
    slots_mode: str = "fixed"      # fixed: exactly `slots`; plus: all free, at least `slots`;
                                   # all: the whole (idle) host
    memory: int = 0
    gpus: int = 0
    max_retries: int = 1
    env: dict[str, str] = field(default_factory=dict)
    depends_on: list[Dependency] = field(default_factory=list)
    # Where the frame runs; None: a fresh directory of its own on the worker,
    # <rqd state dir>/work/<farm id>/<attempt id> (removed afterwards if left empty).
    cwd: str | None = None
    tags: list[str] = field(default_factory=list)
    os: str | None = None
    hosts: list[str] = field(default_factory=list)
    omit_hosts: list[str] = field(default_factory=list)
    requirements: str | None = None
    limits: list[str] = field(default_factory=list)
    timeout: int = 0               # seconds of runtime before the frame is killed (0: none)
    timeout_no_output: int = 0     # seconds without log output before it is killed (0: none)
    outputs: list[str] = field(default_factory=list)   # path patterns of what a frame writes

    def chunks(self) -> list[franges.Chunk]:
        return franges.chunks(self.frames, self.chunk)

    @property
    def slots_text(self) -> str:
        return {"fixed": str(self.slots), "plus": f"{self.slots}+", "all": "all"}[self.slots_mode]


@dataclass
class JobSpec:
    name: str
    project: str
    priority: int
    layers: list[LayerSpec]
    min_slots: int = 0
    max_slots: int | None = None
    notify: list[dict[str, Any]] | None = None     # None: not given (the farm's default)
    paused: bool = False


def _reservations(value: Any, path: str) -> dict[str, Any]:
    """The Qube! form: "host.processors=4+,host.memory=8000,host.gpus=1".  Read before msgspec
    sees the layer, as they stand in for slots, memory and gpus."""
    if not isinstance(value, str):
        raise SpecError(path, LAYER_FIELDS["reservations"].words["wrong"])
    out: dict[str, Any] = {}
    for part in (x.strip() for x in value.split(",") if x.strip()):
        key, sep, val = part.partition("=")
        key, val = key.strip(), val.strip()
        if not sep:
            raise SpecError(path, f"{part!r}: expected KEY=VALUE")
        if key == "host.processors":
            out["slots"] = val
        elif key == "host.memory":
            out["memory"] = val
        elif key == "host.gpus":
            out["gpus"] = val
        else:
            raise SpecError(path, f"unknown reservation {key!r} "
                                  "(host.processors, host.memory, host.gpus)")
    return out


def _prepare(d: dict, whole: frozenset[str], lists: frozenset[str] = frozenset()) -> dict:
    """A copy of mapping `d` with the loose forms of its keys made strict for msgspec."""
    d = dict(d)
    for k in whole.intersection(d):
        d[k] = as_whole(d[k])
    for k in lists.intersection(d):
        if isinstance(d[k], str):
            d[k] = [v.strip() for v in d[k].split(",") if v.strip()]
    return d


def _prepare_layer(d: Any, path: str) -> Any:
    """Layer mapping `d` ready for msgspec: loose forms made strict, one dependency or output
    made a list of one, a whole-number range a string, Qube! reservations spread into slots,
    memory and gpus."""
    if not isinstance(d, dict):
        return d
    out = _prepare(d, _LAYER_WHOLE, _NAME_LISTS)
    deps = out.get("depends_on")
    if isinstance(deps, (str, dict)):
        deps = [deps]
    if isinstance(deps, (list, tuple)):
        out["depends_on"] = [_prepare(x, _DEPENDENCY_WHOLE) if isinstance(x, dict) else x
                             for x in deps]
    if isinstance(out.get("outputs"), str):
        out["outputs"] = [out["outputs"]]
    rng = out.get("range")
    if isinstance(rng, int) and not isinstance(rng, bool):
        out["range"] = str(rng)
    if "reservations" in d:
        for key, val in _reservations(d["reservations"], f"{path}.reservations").items():
            if key in d:
                raise SpecError(f"{path}.{key}", f"given both as {key!r} and in reservations")
            out[key] = val if key == "slots" else as_whole(val)
    return out


def _command(value: list[str] | str, path: str) -> list[str] | str:
    if isinstance(value, str):
        if not value.strip():
            raise SpecError(path, "the command is empty")
        if "\0" in value:
            raise SpecError(path, "the command contains a NUL character")
        return value
    if not value:
        raise SpecError(path, "the command is empty")
    for i, word in enumerate(value):
        if "\0" in word:
            raise SpecError(f"{path}[{i}]", "a command word contains a NUL character")
    if not value[0].strip():
        raise SpecError(f"{path}[0]", "the program name is empty")
    return value


def _slots(value: int | str, path: str) -> tuple[int, str]:
    """`4` (exactly 4, bounded by msgspec), `"4+"` (at least 4, all free), `"all"` (the whole
    idle host)."""
    if not isinstance(value, str):
        return value, "fixed"
    if value == "all":
        return 1, "all"
    m = SLOTS_RE.fullmatch(value.strip())
    if not m:
        raise SpecError(path, f"{value!r}: slots are a number, 'N+' or 'all'")
    n, key = int(m.group(1)), LAYER_FIELDS["slots"]
    if not key.lo <= n <= key.hi:
        raise SpecError(path, f"{n} is out of range {key.lo}..{key.hi}")
    return n, "plus" if m.group(2) else "fixed"


def _requirements(value: str | None, path: str) -> None:
    if value is not None:
        try:
            reqs.parse(value)
        except reqs.RequirementError as exc:
            raise SpecError(path, str(exc)) from None


def _depends(value: list[Union[str, DependencyFile]], path: str) -> list[Dependency]:
    out = []
    for i, d in enumerate(value):
        if isinstance(d, str):
            out.append(Dependency("layer", layer=d))
        elif d.job is not None:
            if d.per_frame:
                raise SpecError(f"{path}[{i}].per_frame",
                                "per-frame dependencies are within one job")
            out.append(Dependency("job", layer=d.layer, job=d.job))
        elif d.layer is None:
            raise SpecError(f"{path}[{i}]", "a dependency names a layer, a job, or both")
        else:
            out.append(Dependency("frame" if d.per_frame else "layer", layer=d.layer))
    return out


def _unique(names: list[str]) -> list[str]:
    """`names` (a list msgspec made) without repeats, in order."""
    return names if len(names) < 2 else list(dict.fromkeys(names))


# What a program can be started with: on Linux each argument and each NAME=value of its
# environment is at most 128 KiB, and all of them at most ARG_MAX (2 MiB by default), which
# the frame shares with the environment rqd passes on.  A frame past them could never start.
MAX_EXEC_STRING = 128 * 1024
MAX_EXEC_TOTAL = 1024 * 1024


def _utf8_len(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def _exec_size(command: list[str] | str, env: dict[str, str], path: str) -> None:
    """Refuse a command or environment too large to start a program with."""
    strings = [(f"{path}.command", command)] if isinstance(command, str) else \
        [(f"{path}.command[{i}]", word) for i, word in enumerate(command)]
    strings += [(f"{path}.env.{name}", f"{name}={value}") for name, value in env.items()]
    total = 0
    for where, text in strings:
        size = _utf8_len(text) + 1
        if size > MAX_EXEC_STRING:
            raise SpecError(where, f"{size:,} bytes: a program cannot be started with an "
                                   f"argument or variable over {MAX_EXEC_STRING:,} bytes")
        total += size
    if total > MAX_EXEC_TOTAL:
        raise SpecError(path, f"the command and env take {total:,} bytes: a program cannot be "
                              f"started with more than {MAX_EXEC_TOTAL:,} of them")


def _layer(lf: LayerFile, given: dict, path: str) -> tuple[LayerSpec, int]:
    """The rules msgspec cannot check of converted layer `lf` (`given` as written), and the
    normalised layer with the number of its frames."""
    command = _command(lf.command, f"{path}.command")
    try:
        count = franges.count_frames(lf.range)
    except franges.RangeError as exc:
        raise SpecError(f"{path}.range", str(exc)) from None
    from_reservations = "slots" not in given and "reservations" in given
    slots, mode = _slots(lf.slots, f"{path}.{'reservations' if from_reservations else 'slots'}")
    _requirements(lf.requirements, f"{path}.requirements")
    env = {k: v if isinstance(v, str) else str(v) for k, v in lf.env.items()} if lf.env else {}
    _exec_size(command, env, path)
    layer = LayerSpec(
        name=lf.name, command=command, range=lf.range, frames=[], chunk=lf.chunk,
        slots=slots, slots_mode=mode, memory=lf.memory, gpus=lf.gpus,
        max_retries=lf.max_retries,
        env=env,
        depends_on=_depends(lf.depends_on, f"{path}.depends_on"),
        cwd=lf.cwd, tags=_unique(lf.tags), os=lf.os, hosts=_unique(lf.hosts),
        omit_hosts=_unique(lf.omit_hosts), requirements=lf.requirements,
        limits=_unique(lf.limits),
        timeout=lf.timeout, timeout_no_output=lf.timeout_no_output, outputs=lf.outputs)
    return layer, count


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """Return one dependency cycle as a list of names (first repeated at the end), or None."""
    # Iterative depth-first search: a long chain of layers must not hit the recursion limit.
    state: dict[str, int] = {}          # 1: on the current path, 2: done
    for root in graph:
        if root in state:
            continue
        state[root] = 1
        path = [root]
        todo = [iter(graph.get(root, []))]
        while todo:
            for m in todo[-1]:
                if state.get(m) == 1:
                    return path[path.index(m):] + [m]
                if m not in state:
                    state[m] = 1
                    path.append(m)
                    todo.append(iter(graph.get(m, [])))
                    break
            else:
                state[path.pop()] = 2
                todo.pop()
    return None


def validate_job(d: Any, path: str = "job", max_frames: int = DEFAULT_MAX_FRAMES,
                 expand: bool = True) -> JobSpec:
    """Validate one job dict; raise SpecError naming the field, or return the normalised spec.
    With `expand` false the layers' frame lists stay empty: the ranges are checked and counted
    only (a client checking a job before sending it has no use for the numbers)."""
    if not isinstance(d, dict):
        raise SpecError(path, "a job is a mapping")
    raw = _prepare(d, _JOB_WHOLE)
    given = raw.get("layers")
    if isinstance(given, (list, tuple)):
        given = raw["layers"] = [_prepare_layer(ld, f"{path}.layers[{i}]")
                                 for i, ld in enumerate(given)]
    job: JobFile = convert(raw, JobFile, path)
    if job.max_slots is not None and job.max_slots < job.min_slots:
        raise SpecError(f"{path}.max_slots", f"{job.max_slots} is below min_slots "
                                             f"{job.min_slots}")
    layers, total = [], 0
    for i, lf in enumerate(job.layers):
        layer, count = _layer(lf, d["layers"][i], f"{path}.layers[{i}]")
        total += count
        if total > max_frames:
            raise SpecError(f"{path}.layers[{i}].range",
                            f"the job would have more than the maximum of {max_frames:,} frames")
        layers.append(layer)
    seen: set[str] = set()
    for i, layer in enumerate(layers):
        # Name the second use: that is the line to fix.  (A set, not list.count: O(n) layers.)
        if layer.name in seen:
            raise SpecError(f"{path}.layers[{i}].name", f"duplicate layer name {layer.name!r}")
        seen.add(layer.name)
    names = seen
    for i, layer in enumerate(layers):
        for j, dep in enumerate(layer.depends_on):
            if dep.job is not None:
                continue    # another job's layer: checked against the database at submit
            if dep.layer not in names:
                raise SpecError(f"{path}.layers[{i}].depends_on[{j}]",
                                f"no layer named {dep.layer!r} in this job")
            if dep.layer == layer.name:
                raise SpecError(f"{path}.layers[{i}].depends_on[{j}]",
                                "a layer cannot depend on itself")
    cycle = _find_cycle({layer.name: [d.layer for d in layer.depends_on if d.job is None]
                         for layer in layers})
    if cycle:
        raise SpecError(f"{path}.layers", "dependency cycle: " + " -> ".join(cycle))
    if expand:
        expand_frames(layers, path, max_frames)
    notify = None
    if job.notify is not None:
        from cuefarm import notify_rules

        try:
            notify = notify_rules.validate(job.notify, f"{path}.notify")
        except notify_rules.RuleError as exc:
            raise SpecError(exc.field, exc.message) from None
    return JobSpec(name=job.name, project=job.project, priority=job.priority, layers=layers,
                   min_slots=job.min_slots, max_slots=job.max_slots, notify=notify,
                   paused=job.paused)


def expand_frames(layers: list[LayerSpec], path: str = "job",
                  max_frames: int = DEFAULT_MAX_FRAMES) -> list[LayerSpec]:
    """Expand the ranges of `layers` (checked by validate_job) that are not yet into their
    frame numbers; return the layers expanded now."""
    expanded = []
    for i, layer in enumerate(layers):
        if layer.frames:
            continue
        try:
            layer.frames = franges.expand(layer.range, max_frames)
        except franges.RangeError as exc:
            raise SpecError(f"{path}.layers[{i}].range", str(exc)) from None
        expanded.append(layer)
    return expanded


def validate_submission(jobs: Any, max_frames: int = DEFAULT_MAX_FRAMES,
                        expand: bool = True) -> list[JobSpec]:
    """Validate a submission (a list of job dicts); all or nothing."""
    if isinstance(jobs, dict):
        jobs = [jobs]
    if not isinstance(jobs, list) or not jobs:
        raise SpecError("jobs", "a submission is a list of at least one job")
    return [validate_job(j, f"jobs[{i}]", max_frames, expand) for i, j in enumerate(jobs)]


# --- changes to a submitted job or layer ------------------------------------------------------

JOB_EDITABLE = {"priority", "min_slots", "max_slots", "project"}
LAYER_EDITABLE = {"tags", "os", "hosts", "omit_hosts", "requirements", "limits", "slots",
                  "memory", "gpus", "timeout", "timeout_no_output", "max_retries"}


def _changes(name: str, kind: type[msgspec.Struct], editable: set[str]) -> type[msgspec.Struct]:
    """A Struct of the `editable` keys of `kind`, each with the same type, or unset."""
    types = {f.name: f.type for f in msgspec.structs.fields(kind)}
    return msgspec.defstruct(name, [(k, Union[types[k], msgspec.UnsetType], msgspec.UNSET)
                                    for k in sorted(editable)],
                             kw_only=True, forbid_unknown_fields=True, module=__name__)


JobChanges = _changes("JobChanges", JobFile, JOB_EDITABLE)
LayerChanges = _changes("LayerChanges", LayerFile, LAYER_EDITABLE)
_CHANGE_KEYS = {JobChanges: {k: JOB_FIELDS[k] for k in sorted(JOB_EDITABLE)},
                LayerChanges: {k: LAYER_FIELDS[k] for k in sorted(LAYER_EDITABLE)}}


def validate_job_changes(values: Any, path: str = "values") -> dict[str, Any]:
    """Validate changes to a submitted job; return column values."""
    if not isinstance(values, dict) or not values:
        raise SpecError(path, "give at least one of " + ", ".join(sorted(JOB_EDITABLE)))
    changes = convert(_prepare(values, _JOB_WHOLE), JobChanges, path, _CHANGE_KEYS)
    return {key: getattr(changes, key) for key in values}


def validate_layer_changes(values: Any, path: str = "values") -> dict[str, Any]:
    """Validate changes to a submitted layer; return column values."""
    if not isinstance(values, dict) or not values:
        raise SpecError(path, "give at least one of " + ", ".join(sorted(LAYER_EDITABLE)))
    changes = convert(_prepare(values, _LAYER_WHOLE, _NAME_LISTS), LayerChanges, path,
                      _CHANGE_KEYS)
    out: dict[str, Any] = {}
    for key in values:
        v = getattr(changes, key)
        if key == "slots":
            out["slots"], out["slots_mode"] = _slots(v, f"{path}.slots")
        elif key in _NAME_LISTS:
            out[key] = _unique(v)
        elif key == "requirements":
            _requirements(v, f"{path}.{key}")
            out[key] = v or None
        else:
            out[key] = v
    return out
