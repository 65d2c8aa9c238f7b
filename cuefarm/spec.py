"""Job specs: validate a submitted job dict and normalise it.

A job is a plain dict (from Python, JSON or YAML).  Validation names the exact field at fault
(`jobs[0].layers[1].range`) and accepts nothing it does not understand, so a typo never silently
becomes a default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cuefarm import frames as franges
from cuefarm import requirements as reqs

# Used with fullmatch(): "$" would also accept a trailing newline.  INT_RE bounds the digits so
# int() never sees a huge string (it raises a plain ValueError past 4300 digits).
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}", re.ASCII)
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
INT_RE = re.compile(r"-?[0-9]{1,18}", re.ASCII)

TAG_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}", re.ASCII)
PATTERN_RE = re.compile(r"[A-Za-z0-9_.\-*?\[\]!]{1,256}", re.ASCII)
OS_NAMES = ("linux", "windows", "darwin")
SLOTS_RE = re.compile(r"([0-9]{1,4})(\+?)", re.ASCII)
DEFAULT_MAX_FRAMES = 1_000_000
REQUIRED = object()         # the default of a key that must be given


@dataclass(frozen=True)
class Key:
    """One key of a job file: what its value is, its default, its bounds, what it means.
    Validation takes defaults and bounds from here, and the job file reference
    (`reference()`, docs/job-file.md) is written from here, so the two cannot disagree."""

    name: str
    value: str                  # the kind of value, in words
    default: Any
    doc: str
    lo: int | None = None       # bounds of a whole number
    hi: int | None = None


MAX_SECONDS = 365 * 86400
JOB_FIELDS = {k.name: k for k in [
    Key("name", "name", REQUIRED, "The job's name, shown everywhere."),
    Key("project", "name", "default", "The project (OpenCue's show) the job belongs to; its "
        "fair share and members apply."),
    Key("priority", "whole number", 50, "Higher runs first.", -1_000_000, 1_000_000),
    Key("min_slots", "whole number", 0, "Slots the job gets before jobs of lower priority in "
        "its project.", 0, 1 << 30),
    Key("max_slots", "whole number", None, "The most slots the job may use at once (not "
        "given: no maximum).", 1, 1 << 30),
    Key("paused", "true or false", False, "Submit the job paused: nothing of it runs until it "
        "is resumed (`cuefarm resume`)."),
    Key("layers", "list of layers", REQUIRED, "At least one layer (below)."),
    Key("notify", "list of rules", None, "Whom to tell, by e-mail or webhook, when the job "
        "finishes, a frame dies or the job dies (below). Not given: the project's rules "
        "(`cuefarm projects notify`), else the supervisor's defaults, if any; `[]`: none."),
]}
LAYER_FIELDS = {k.name: k for k in [
    Key("name", "name", REQUIRED, "The layer's name, unique in the job."),
    Key("command", "string or list of words", REQUIRED, "What each frame runs: a list of "
        "words runs as is, a string is run by the platform shell. Frame tokens are replaced "
        "(below)."),
    Key("range", "frame range", REQUIRED, "The frame numbers: `1-100`, `1-100x2`, `1,5,9`, "
        "`10-1`."),
    Key("chunk", "whole number", 1, "Frames run by one process (`#FRAME_START#` to "
        "`#FRAME_END#`).", 1, 1_000_000),
    Key("slots", "`N`, `N+` or `all`", 1, "Slots a frame takes: exactly N; at least N and all "
        "free ones (`N+`); or a whole idle host (`all`).", 1, 4096),
    Key("memory", "whole number (MB)", 0, "Memory a frame needs; hosts with less memory do "
        "not take it.", 0, 1 << 30),
    Key("gpus", "whole number", 0, "GPUs a frame needs.", 0, 64),
    Key("reservations", "string", None, "The same in Qube!'s form: "
        "`host.processors=4+,host.memory=8000,host.gpus=1` (instead of slots, memory, gpus)."),
    Key("max_retries", "whole number", 1, "How often a failed frame runs again before it is "
        "DEAD.", 0, 100),
    Key("timeout", "whole number (seconds)", 0, "Kill a frame running longer than this "
        "(0: never).", 0, MAX_SECONDS),
    Key("timeout_no_output", "whole number (seconds)", 0, "Kill a frame that writes nothing "
        "to its log for this long (0: never).", 0, MAX_SECONDS),
    Key("env", "mapping of names to strings", {}, "Environment variables added to each "
        "frame's. Variables that change how programs load (LD_*, DYLD_*, PYTHONPATH, "
        "PERL5LIB, NODE_OPTIONS...) are refused unless the supervisor's loader_env_allow "
        "allows them for the project."),
    Key("cwd", "path", None, "The directory a frame runs in (path maps apply). Not given: "
        "each attempt runs in a fresh directory of its own under the worker's data "
        "directory."),
    Key("depends_on", "list of dependencies", [], "What the layer waits for (below)."),
    Key("tags", "list of tags", [], "Only hosts with all these tags."),
    Key("os", " or ".join(f"`{n}`" for n in OS_NAMES), None, "Only hosts running this OS."),
    Key("hosts", "list of name patterns", [], "Only hosts matching one of these, e.g. "
        "`render-*`."),
    Key("omit_hosts", "list of name patterns", [], "Never hosts matching these."),
    Key("requirements", "host expression", None, "Only hosts for which it holds, e.g. "
        "`host.memory >= 32000 and \"gpu\" in host.tags`."),
    Key("limits", "list of limit names", [], "Limits (e.g. licences) each running frame "
        "holds; see `cuefarm limits`."),
    Key("outputs", "list of paths", [], "Images each frame writes, `#` standing for the "
        "frame number padded to as many digits (`/shots/sh010/out.####.png`; `#FRAME#` and "
        "`%04d` work too); cuegui previews them."),
]}
DEPENDENCY_FIELDS = {k.name: k for k in [
    Key("layer", "layer name", None, "A layer of this job (or of `job`, when given)."),
    Key("job", "job id", None, "Another job, already submitted: wait for all of it (or for "
        "its `layer`).", 1, 1 << 62),
    Key("per_frame", "true or false", False, "Frame by frame: frame N waits only for frame N "
        "of `layer` (within this job)."),
]}
JOB_KEYS = set(JOB_FIELDS)
LAYER_KEYS = set(LAYER_FIELDS)


class SpecError(ValueError):
    """A job spec field that cannot be accepted."""

    def __init__(self, field_path: str, message: str):
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message


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


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool):
        raise SpecError(path, f"expected a whole number, got {value!r}")
    if isinstance(value, str) and INT_RE.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise SpecError(path, f"expected a whole number, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(path, f"{value} is out of range {lo}..{hi}")
    return value


def _key_int(d: dict, key: Key, path: str) -> int:
    """The whole number `d` gives for `key` (or its default), within the key's bounds."""
    return _int(d.get(key.name, key.default), f"{path}.{key.name}", key.lo, key.hi)


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise SpecError(path, f"{value!r} is not a valid name (letters, digits, '_', '.', '-'; "
                              "starts with a letter or digit; at most 128 characters)")
    return value


def _unknown(d: dict, allowed: set[str], path: str) -> None:
    extra = sorted(set(d) - allowed, key=str)
    if extra:
        raise SpecError(f"{path}.{extra[0]}", f"unknown key {extra[0]!r} (allowed: "
                                              f"{', '.join(sorted(allowed))})")


def _command(value: Any, path: str) -> list[str] | str:
    if isinstance(value, str):
        if not value.strip():
            raise SpecError(path, "the command is empty")
        if "\0" in value:
            raise SpecError(path, "the command contains a NUL character")
        return value
    if isinstance(value, list):
        if not value:
            raise SpecError(path, "the command is empty")
        for i, word in enumerate(value):
            if not isinstance(word, str):
                raise SpecError(f"{path}[{i}]", f"command words are strings, got {word!r}")
            if "\0" in word:
                raise SpecError(f"{path}[{i}]", "a command word contains a NUL character")
        if not value[0].strip():
            raise SpecError(f"{path}[0]", "the program name is empty")
        return list(value)
    raise SpecError(path, "a command is a string (run by the shell) or a list of words")


def _env(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise SpecError(path, "env is a mapping of variable names to strings")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not ENV_NAME_RE.fullmatch(k):
            raise SpecError(f"{path}.{k}", f"{k!r} is not a valid environment variable name")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise SpecError(f"{path}.{k}", f"environment values are strings, got {v!r}")
        # A process environment cannot hold NUL; the worker would fail every launch.
        if "\0" in str(v):
            raise SpecError(f"{path}.{k}", "the value contains a NUL character")
        out[k] = str(v)
    return out


def _depends(value: Any, path: str) -> list[Dependency]:
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(path, "depends_on is a list of layer names or dependency mappings")
    out = []
    for i, d in enumerate(value):
        p = f"{path}[{i}]"
        if isinstance(d, str):
            out.append(Dependency("layer", layer=d))
            continue
        if not isinstance(d, dict):
            raise SpecError(p, f"expected a layer name or a mapping, got {d!r}")
        _unknown(d, set(DEPENDENCY_FIELDS), p)
        layer, job, per_frame = d.get("layer"), d.get("job"), d.get("per_frame", False)
        if not isinstance(per_frame, bool):
            raise SpecError(f"{p}.per_frame", "per_frame is true or false")
        if layer is not None and not isinstance(layer, str):
            raise SpecError(f"{p}.layer", f"expected a layer name, got {layer!r}")
        if job is not None:
            job = _int(job, f"{p}.job", DEPENDENCY_FIELDS["job"].lo, DEPENDENCY_FIELDS["job"].hi)
            if per_frame:
                raise SpecError(f"{p}.per_frame", "per-frame dependencies are within one job")
            out.append(Dependency("job", layer=layer, job=job))
        elif layer is None:
            raise SpecError(p, "a dependency names a layer, a job, or both")
        else:
            out.append(Dependency("frame" if per_frame else "layer", layer=layer))
    return out


def _names(value: Any, path: str, regex: re.Pattern, what: str) -> list[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise SpecError(path, f"expected a list of {what}s")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not regex.fullmatch(v):
            raise SpecError(f"{path}[{i}]", f"{v!r} is not a valid {what}")
    return list(dict.fromkeys(value))


def _slots(value: Any, path: str) -> tuple[int, str]:
    """`4` (exactly 4), `"4+"` (at least 4, all free), `"all"` (the whole idle host)."""
    if value == "all":
        return 1, "all"
    if isinstance(value, str):
        m = SLOTS_RE.fullmatch(value.strip())
        if not m:
            raise SpecError(path, f"{value!r}: slots are a number, 'N+' or 'all'")
        n, key = int(m.group(1)), LAYER_FIELDS["slots"]
        if not key.lo <= n <= key.hi:
            raise SpecError(path, f"{n} is out of range {key.lo}..{key.hi}")
        return n, "plus" if m.group(2) else "fixed"
    return _int(value, path, LAYER_FIELDS["slots"].lo, LAYER_FIELDS["slots"].hi), "fixed"


def _reservations(value: Any, path: str) -> dict[str, Any]:
    """The Qube! form: "host.processors=4+,host.memory=8000,host.gpus=1"."""
    if not isinstance(value, str):
        raise SpecError(path, "reservations are a string like 'host.processors=4+,host.memory=8000'")
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


def _layer(d: Any, path: str) -> tuple[LayerSpec, int]:
    if not isinstance(d, dict):
        raise SpecError(path, "a layer is a mapping")
    _unknown(d, LAYER_KEYS, path)
    for key in ("name", "command", "range"):
        if key not in d:
            raise SpecError(f"{path}.{key}", "is required")
    name = _name(d["name"], f"{path}.name")
    command = _command(d["command"], f"{path}.command")
    rng = d["range"]
    if isinstance(rng, int) and not isinstance(rng, bool):
        rng = str(rng)
    try:
        count = franges.count_frames(rng)
    except franges.RangeError as exc:
        raise SpecError(f"{path}.range", str(exc)) from None
    cwd = d.get("cwd")
    if cwd is not None and (not isinstance(cwd, str) or not cwd):
        raise SpecError(f"{path}.cwd", "cwd is a directory path")
    res = _reservations(d["reservations"], f"{path}.reservations") if "reservations" in d else {}
    for key in res:
        if key in d:
            raise SpecError(f"{path}.{key}", f"given both as {key!r} and in reservations")
    slots, mode = _slots(d.get("slots", res.get("slots", 1)),
                         f"{path}.{'slots' if 'slots' in d or not res else 'reservations'}")
    requirements = d.get("requirements")
    if requirements is not None:
        try:
            reqs.parse(requirements)
        except reqs.RequirementError as exc:
            raise SpecError(f"{path}.requirements", str(exc)) from None
    os_name = d.get("os")
    if os_name is not None and os_name not in OS_NAMES:
        raise SpecError(f"{path}.os", f"{os_name!r} is not one of {', '.join(OS_NAMES)}")
    keys = LAYER_FIELDS
    layer = LayerSpec(
        name=name, command=command, range=rng, frames=[],
        chunk=_key_int(d, keys["chunk"], path),
        slots=slots, slots_mode=mode,
        memory=_key_int({"memory": keys["memory"].default, **res, **d}, keys["memory"], path),
        gpus=_key_int({"gpus": keys["gpus"].default, **res, **d}, keys["gpus"], path),
        max_retries=_key_int(d, keys["max_retries"], path),
        env=_env(d.get("env", {}), f"{path}.env"),
        depends_on=_depends(d.get("depends_on", []), f"{path}.depends_on"),
        cwd=cwd,
        tags=_names(d.get("tags", []), f"{path}.tags", TAG_RE, "tag"),
        os=os_name,
        hosts=_names(d.get("hosts", []), f"{path}.hosts", PATTERN_RE, "host name pattern"),
        omit_hosts=_names(d.get("omit_hosts", []), f"{path}.omit_hosts", PATTERN_RE,
                          "host name pattern"),
        requirements=requirements,
        limits=_names(d.get("limits", []), f"{path}.limits", TAG_RE, "limit name"),
        timeout=_key_int(d, keys["timeout"], path),
        timeout_no_output=_key_int(d, keys["timeout_no_output"], path),
        outputs=_outputs(d.get("outputs", []), f"{path}.outputs"))
    return layer, count


MAX_OUTPUTS = 16


def _outputs(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise SpecError(path, "outputs is a list of file paths")
    if len(value) > MAX_OUTPUTS:
        raise SpecError(path, f"at most {MAX_OUTPUTS} outputs per layer")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not v.strip():
            raise SpecError(f"{path}[{i}]", f"an output is a file path, got {v!r}")
        if "\0" in v or len(v) > 4096:
            raise SpecError(f"{path}[{i}]", "not a usable file path")
    return list(value)


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
    _unknown(d, JOB_KEYS, path)
    if "name" not in d:
        raise SpecError(f"{path}.name", "is required")
    name = _name(d["name"], f"{path}.name")
    project = _name(d.get("project", JOB_FIELDS["project"].default), f"{path}.project")
    priority = _key_int(d, JOB_FIELDS["priority"], path)
    min_slots = _key_int(d, JOB_FIELDS["min_slots"], path)
    max_slots = d.get("max_slots")
    if max_slots is not None:
        max_slots = _key_int(d, JOB_FIELDS["max_slots"], path)
        if max_slots < min_slots:
            raise SpecError(f"{path}.max_slots", f"{max_slots} is below min_slots {min_slots}")
    paused = d.get("paused", False)
    if not isinstance(paused, bool):
        raise SpecError(f"{path}.paused", f"expected true or false, got {paused!r}")
    raw_layers = d.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise SpecError(f"{path}.layers", "a job needs a list of at least one layer")
    layers, total = [], 0
    for i, ld in enumerate(raw_layers):
        layer, count = _layer(ld, f"{path}.layers[{i}]")
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
    for i, layer in enumerate(layers if expand else ()):
        try:
            layer.frames = franges.expand(layer.range, max_frames)
        except franges.RangeError as exc:
            raise SpecError(f"{path}.layers[{i}].range", str(exc)) from None
    notify = None
    if d.get("notify") is not None:
        from cuefarm import notify_rules

        try:
            notify = notify_rules.validate(d["notify"], f"{path}.notify")
        except notify_rules.RuleError as exc:
            raise SpecError(exc.field, exc.message) from None
    return JobSpec(name=name, project=project, priority=priority, layers=layers,
                   min_slots=min_slots, max_slots=max_slots, notify=notify, paused=paused)


def validate_submission(jobs: Any, max_frames: int = DEFAULT_MAX_FRAMES,
                        expand: bool = True) -> list[JobSpec]:
    """Validate a submission (a list of job dicts); all or nothing."""
    if isinstance(jobs, dict):
        jobs = [jobs]
    if not isinstance(jobs, list) or not jobs:
        raise SpecError("jobs", "a submission is a list of at least one job")
    return [validate_job(j, f"jobs[{i}]", max_frames, expand) for i, j in enumerate(jobs)]


JOB_EDITABLE = {"priority", "min_slots", "max_slots", "project"}
LAYER_EDITABLE = {"tags", "os", "hosts", "omit_hosts", "requirements", "limits", "slots",
                  "memory", "gpus", "timeout", "timeout_no_output", "max_retries"}


def validate_job_changes(values: Any, path: str = "values") -> dict[str, Any]:
    """Validate changes to a submitted job; return column values."""
    if not isinstance(values, dict) or not values:
        raise SpecError(path, "give at least one of " + ", ".join(sorted(JOB_EDITABLE)))
    _unknown(values, JOB_EDITABLE, path)
    out: dict[str, Any] = {}
    for key, v in values.items():
        p = f"{path}.{key}"
        if key in ("priority", "min_slots"):
            out[key] = _key_int(values, JOB_FIELDS[key], path)
        elif key == "max_slots":
            out[key] = None if v is None else _key_int(values, JOB_FIELDS[key], path)
        else:
            out[key] = _name(v, p)
    return out


def validate_layer_changes(values: Any, path: str = "values") -> dict[str, Any]:
    """Validate changes to a submitted layer; return column values."""
    if not isinstance(values, dict) or not values:
        raise SpecError(path, "give at least one of " + ", ".join(sorted(LAYER_EDITABLE)))
    _unknown(values, LAYER_EDITABLE, path)
    out: dict[str, Any] = {}
    for key, v in values.items():
        p = f"{path}.{key}"
        if key == "slots":
            out["slots"], out["slots_mode"] = _slots(v, p)
        elif key in ("memory", "timeout", "timeout_no_output", "gpus", "max_retries"):
            out[key] = _key_int(values, LAYER_FIELDS[key], path)
        elif key in ("tags", "limits"):
            out[key] = _names(v, p, TAG_RE, "tag" if key == "tags" else "limit name")
        elif key in ("hosts", "omit_hosts"):
            out[key] = _names(v, p, PATTERN_RE, "host name pattern")
        elif key == "os":
            if v is not None and v not in OS_NAMES:
                raise SpecError(p, f"{v!r} is not one of {', '.join(OS_NAMES)}")
            out[key] = v
        else:  # requirements
            if v is not None:
                try:
                    reqs.parse(v)
                except reqs.RequirementError as exc:
                    raise SpecError(p, str(exc)) from None
            out[key] = v or None
    return out


# --- the job file reference ---------------------------------------------------------------

REFERENCE_INTRO = """\
# Job file reference

A job file is YAML or JSON: one job (a mapping) or a list of jobs, submitted with
`cuefarm submit FILE` (`--check` validates it without submitting). Unknown keys are refused, so a
misspelt key never silently becomes a default. `resources/examples/job.yaml` is an example.

This page is generated from the definitions the supervisor validates with (`cuefarm/spec.py`):
`cuefarm spec --reference` prints it.
"""

REFERENCE_TAIL = """\
## Frame tokens and environment

In a command, `#FRAME#` (the first frame of the chunk), `#FRAME_START#`, `#FRAME_END#` and
`#ZFRAME#` (the frame zero-padded to 4 digits) are replaced for each frame. In YAML, ` #` starts a
comment: quote commands that use tokens. A frame's environment has `CUE_JOB`, `CUE_LAYER`,
`CUE_FRAME`, `CUE_FRAME_START`, `CUE_FRAME_END`, `CUE_ATTEMPT`, `CUE_HOST` and `CUE_THREADS`.

## Progress

A running frame's progress (the frames view's Progress column, `cuefarm frames`) comes from
the lines it prints, read by the worker with each heartbeat: Blender's status lines (`Fra:12
... | Sample 40/128`: how far through the chunk's frames and the current frame's samples), or
a line that is exactly `PROGRESS 45%` (a whole or decimal percentage from 0 to 100), which
any script can print. The latest such line counts; a frame that succeeds is at 100%.
`resources/examples/blender.yaml` and `ffmpeg.yaml` are jobs that render and encode.

## Names

Names (of jobs, projects, layers) are letters, digits, `_`, `.` and `-`, start with a letter
or digit, and are at most 128 characters. Tags and limit names are letters, digits, `_`, `.`
and `-`; host name patterns may also use `*`, `?` and `[...]`. A list may be written as one
comma-separated string.

## Notifications

Each entry of a job's `notify` is `{when: [EVENTS], email: ADDRESS}` or `{when: [EVENTS], webhook:
URL}` (`when` defaults to `[finished]`). Events: `finished` (every frame succeeded or was eaten),
`frame_dead` (frames ran out of retries: one message for the frames of a job that died
together) and `job_dead` (frames died and nothing else is left to run). A webhook gets an HTTP
POST of a JSON body (`event`, `job`, `frames`, `at`); e-mail goes through the SMTP server in the
supervisor's `[notifications]` configuration. A job without `notify` gets its project's rules
(`cuefarm projects notify NAME --email ... --when ...`), else the supervisor's defaults
(`[notifications] default_email`, `default_webhook`, `default_on`). Messages are kept in the database until sent and
retried with backoff; `cuefarm notifications` lists those not sent yet and those given up on,
with the last error.

## Exporting a job

`cuefarm job export JOB` (`--json`, `-o FILE`) writes a submitted job back as a job file with its
current settings (changes made after submitting included, defaults left out); submitting that
file makes an equal job.

## Open Job Description templates

A file may instead hold an Open Job Description job template (`specificationVersion:
jobtemplate-2023-09`), validated by the `openjd-model` library; its job parameters are given with
`cuefarm submit template.yaml -p Name=Value` (or `Client.submit(jobs, parameters={...})`).
It is mapped as follows, and anything that cannot be honoured is refused, naming its place in the
template (e.g. `jobs[0].steps[1].stepEnvironments[0]`):

| OpenJD | CueFarm |
|---|---|
| job `name`, step `name` | job and layer names (other characters become `_`) |
| step `dependencies` | the layer's `depends_on` (whole layers) |
| one `INT` task parameter | the layer's `range`; `{{Task.Param.X}}` is `#FRAME#` |
| one `CHUNK[INT]` parameter (extension `TASK_CHUNKING`) | `range` and `chunk` (`defaultTaskCount`); the parameter is `#FRAME_START#-#FRAME_END#`; adaptive chunks are refused |
| any other space (`STRING`, `FLOAT`, `PATH` values, several parameters, `combination`) | frames 1 to N, one per task, each running its own command line (at most 10,000 tasks) |
| `embeddedFiles` | written into the frame's working directory before the command runs (needs `sh`) |
| environments with only `variables` | the layer's `env`; an environment with a script is refused |
| `amount.worker.vcpu`, `.memory`, `.gpu` | `slots`, `memory`, `gpus` (min); a max becomes a `requirements` term |
| `attr.worker.os.family` | `os` (or a `requirements` term for several) |
| `attr.custom.*` | host tags: `anyOf: [A, B]` needs a host tagged A or B |
| `onRun.timeout` | `timeout`; a cancelation other than `TERMINATE` is refused |

## Qube!-style job dicts

A mapping with a `prototype` is read as a Qube! submit dict: prototypes `cmdrange` and `cmdline`;
`package.cmdline` (with `QB_FRAME_NUMBER`, `QB_FRAME_START`, `QB_FRAME_END`), the frames as
`package.range`, `range` or `agenda`, `package.rangeExecution` (`individual` or `chunks:N`),
`package.padding` (1 or 4), `priority` (Qube!'s 1 to 9999, 1 most urgent; becomes 10000 minus it),
`cpus` (becomes `max_slots`), `reservations`, `requirements`, `hosts`, `omithosts`, `env`, `cwd`,
`retrywork` (`max_retries`), `timeout` and `project`. Any other key is refused.
"""


def default_text(key: Key) -> str:
    """A key's default as the reference shows it."""
    if key.default is REQUIRED:
        return "required"
    if key.default is None or key.default == [] or key.default == {}:
        return "-"
    if isinstance(key.default, bool):
        return f"`{str(key.default).lower()}`"
    return f"`{key.default}`"


def value_text(key: Key) -> str:
    """A key's kind of value, with its bounds."""
    return key.value if key.lo is None else f"{key.value}, {key.lo:,} to {key.hi:,}"


def _table(keys: dict[str, Key]) -> list[str]:
    lines = ["| key | value | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{k.name}` | {value_text(k)} | {default_text(k)} | {k.doc} |"
              for k in keys.values()]
    return lines


def reference() -> str:
    """The job file reference in Markdown, written from the key definitions above."""
    lines = [REFERENCE_INTRO, "## Job", "", *_table(JOB_FIELDS), "", "## Layer", "",
             "Each entry of a job's `layers`:", "", *_table(LAYER_FIELDS), "",
             "## Dependencies", "",
             "Each entry of a layer's `depends_on` is a layer name of this job (`render`), or "
             "a mapping:", "", *_table(DEPENDENCY_FIELDS), "",
             "So `{layer: render, per_frame: true}` waits frame by frame, `{job: 12}` for all "
             "of job 12 and `{job: 12, layer: comp}` for its layer `comp`. A layer starts once "
             "all it waits for has finished (succeeded or eaten).", "", REFERENCE_TAIL]
    return "\n".join(lines)
