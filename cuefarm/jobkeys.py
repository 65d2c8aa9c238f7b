"""The keys of a job file as msgspec Structs: their types, bounds, defaults and meanings.

Each key is defined once, here: msgspec checks shapes, types, bounds and unknown keys when a
job dict is converted (`convert`), the `Key` tables (`JOB_FIELDS`, ...) that the job file
reference is written from are read off the same Structs, and a msgspec error is said again as
a `SpecError` naming the field by its path (`job.layers[0].slots`), in the words the field's
definition gives.  What msgspec cannot express (frame ranges, dependencies between layers,
rules across keys) is checked in `cuefarm.spec`.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional, Union

import msgspec

# Whole names (fullmatch); `anchored` makes them msgspec patterns (which re.search).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}"
ENV_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"
TAG_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"
HOST_PATTERN = r"[A-Za-z0-9_.\-*?\[\]!]{1,256}"
NO_NUL = r"^[^\x00]*\Z"
OS_NAMES = ("linux", "windows", "darwin")
MAX_SECONDS = 365 * 86400
MAX_OUTPUTS = 16
# A layer's lists of tags, host patterns, limits and dependencies: each is matched against
# every host the layer may run on, at every dispatch.
MAX_LISTED = 1_000
LISTED = msgspec.Meta(max_length=MAX_LISTED)
REQUIRED = object()         # the default of a key that must be given
# Bounds the digits so int() never sees a huge string (it raises past 4300 digits).
INT_RE = re.compile(r"-?[0-9]{1,18}", re.ASCII)


class SpecError(ValueError):
    """A job spec field that cannot be accepted."""

    def __init__(self, field_path: str, message: str):
        super().__init__(f"{field_path}: {message}")
        self.field = field_path
        self.message = message


def key(value: str, doc: str = "", **words: str) -> msgspec.Meta:
    """A key's description: `value` (its kind of value, in words) and `doc` (what it means) for
    the reference; `words` say what is wrong with a bad value where the generic words would
    not do: `wrong` (the value), `wrong_pattern` (a value of the wrong length), `item` (an
    entry of it), `item_pattern` (an entry that does not match its pattern or length), `name`
    (a name in a mapping), `missing` (the key left
    out).  Each may use {value} (the bad value's repr, shortened)."""
    return msgspec.Meta(description=doc or None, extra={"value": value, **words})


def anchored(pattern: str) -> str:
    """`pattern` matching a whole string: "\\Z", as "$" would also accept a trailing newline."""
    return rf"^(?:{pattern})\Z"


def whole(lo: int, hi: int) -> Any:
    """A whole number from `lo` to `hi`."""
    return Annotated[int, msgspec.Meta(ge=lo, le=hi)]


Name = Annotated[str, msgspec.Meta(pattern=anchored(NAME_PATTERN))]
Tag = Annotated[str, msgspec.Meta(pattern=anchored(TAG_PATTERN))]
HostPattern = Annotated[str, msgspec.Meta(pattern=anchored(HOST_PATTERN))]
EnvName = Annotated[str, msgspec.Meta(pattern=anchored(ENV_NAME_PATTERN))]
# A process environment cannot hold NUL; the worker would fail every launch.
EnvValue = Union[Annotated[str, msgspec.Meta(pattern=NO_NUL)], int, float]
# Not blank, no NUL.
OutputPath = Annotated[str, msgspec.Meta(pattern=r"^[^\x00]*[^\x00\s][^\x00]*\Z",
                                         max_length=4096)]
NAME_WORDS = ("{value} is not a valid name (letters, digits, '_', '.', '-'; starts with a "
              "letter or digit; at most 128 characters)")


class DependencyFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An entry of a layer's `depends_on` written as a mapping."""

    layer: Annotated[Optional[str], key(
        "layer name", "A layer of this job (or of `job`, when given).",
        wrong="expected a layer name, got {value}")] = None
    job: Annotated[Optional[whole(1, 1 << 62)], key(
        "job id", "Another job, already submitted: wait for all of it (or for its `layer`).")
    ] = None
    per_frame: Annotated[bool, key(
        "true or false", "Frame by frame: frame N waits only for frame N of `layer` (within "
        "this job).", wrong="per_frame is true or false")] = False


class LayerFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An entry of a job's `layers`."""

    name: Annotated[Name, key("name", "The layer's name, unique in the job.", wrong=NAME_WORDS)]
    command: Annotated[Union[str, list[str]], key(
        "string or list of words", "What each frame runs: a list of words runs as is, a "
        "string is run by the platform shell. Frame tokens are replaced (below). At most 128 "
        "KiB a word, 1 MiB with `env` (what a program can be started with).",
        wrong="a command is a string (run by the shell) or a list of words",
        item="command words are strings, got {value}")]
    range: Annotated[str, key(
        "frame range", "The frame numbers: `1-100`, `1-100x2`, `1,5,9`, `10-1`.",
        wrong="a frame range is a string such as '1-100x2', got {value}")]
    chunk: Annotated[whole(1, 1_000_000), key(
        "whole number", "Frames run by one process (`#FRAME_START#` to `#FRAME_END#`).")] = 1
    slots: Annotated[Union[whole(1, 4096), str], key(
        "`N`, `N+` or `all`", "Slots a frame takes: exactly N; at least N and all free ones "
        "(`N+`); or a whole idle host (`all`).",
        wrong="expected a whole number, 'N+' or 'all', got {value}")] = 1
    memory: Annotated[whole(0, 1 << 30), key(
        "whole number (MB)", "Memory a frame needs; hosts with less memory do not take it.")
    ] = 0
    gpus: Annotated[whole(0, 64), key("whole number", "GPUs a frame needs.")] = 0
    reservations: Annotated[Optional[str], key(
        "string", "The same in Qube!'s form: `host.processors=4+,host.memory=8000,host.gpus=1` "
        "(instead of slots, memory, gpus).",
        wrong="reservations are a string like 'host.processors=4+,host.memory=8000'")] = None
    max_retries: Annotated[whole(0, 100), key(
        "whole number", "How often a failed frame runs again before it is DEAD.")] = 1
    timeout: Annotated[whole(0, MAX_SECONDS), key(
        "whole number (seconds)", "Kill a frame running longer than this (0: never).")] = 0
    timeout_no_output: Annotated[whole(0, MAX_SECONDS), key(
        "whole number (seconds)", "Kill a frame that writes nothing to its log for this long "
        "(0: never).")] = 0
    env: Annotated[dict[EnvName, EnvValue], key(
        "mapping of names to strings", "Environment variables added to each frame's. Variables "
        "that change how programs load (LD_*, DYLD_*, PYTHONPATH, PERL5LIB, NODE_OPTIONS...) "
        "are refused unless the supervisor's loader_env_allow allows them for the project. At "
        "most 128 KiB a variable.",
        wrong="env is a mapping of variable names to strings",
        name="{value} is not a valid environment variable name",
        item="environment values are strings, got {value}",
        item_pattern="the value contains a NUL character")] = {}
    cwd: Annotated[Optional[Annotated[str, msgspec.Meta(min_length=1)]], key(
        "path", "The directory a frame runs in (path maps apply). Not given: each attempt runs "
        "in a fresh directory of its own under the worker's data directory.",
        wrong="cwd is a directory path")] = None
    depends_on: Annotated[list[Union[str, DependencyFile]], LISTED, key(
        "list of dependencies", "What the layer waits for (below).",
        wrong="depends_on is a list of layer names or dependency mappings",
        wrong_pattern=f"at most {MAX_LISTED:,} dependencies",
        item="expected a layer name or a mapping, got {value}")] = []
    tags: Annotated[list[Tag], LISTED, key(
        "list of tags", "Only hosts with all these tags.", wrong="expected a list of tags",
        wrong_pattern=f"at most {MAX_LISTED:,} tags",
        item="{value} is not a valid tag")] = []
    os: Annotated[Optional[Literal[OS_NAMES]], key(
        " or ".join(f"`{n}`" for n in OS_NAMES), "Only hosts running this OS.",
        wrong="{value} is not one of " + ", ".join(OS_NAMES))] = None
    hosts: Annotated[list[HostPattern], LISTED, key(
        "list of name patterns", "Only hosts matching one of these, e.g. `render-*`.",
        wrong="expected a list of host name patterns",
        wrong_pattern=f"at most {MAX_LISTED:,} patterns (one such as render-* or a tag "
                      "names many hosts)",
        item="{value} is not a valid host name pattern")] = []
    omit_hosts: Annotated[list[HostPattern], LISTED, key(
        "list of name patterns", "Never hosts matching these.",
        wrong="expected a list of host name patterns",
        wrong_pattern=f"at most {MAX_LISTED:,} patterns (one such as render-* names many "
                      "hosts)",
        item="{value} is not a valid host name pattern")] = []
    requirements: Annotated[Optional[str], key(
        "host expression", "Only hosts for which it holds, e.g. `host.memory >= 32000 and "
        "\"gpu\" in host.tags`.", wrong="requirements are an expression (a string), got {value}")
    ] = None
    limits: Annotated[list[Tag], LISTED, key(
        "list of limit names", "Limits (e.g. licences) each running frame holds; see "
        "`cuefarm limits`.", wrong="expected a list of limit names",
        wrong_pattern=f"at most {MAX_LISTED:,} limits",
        item="{value} is not a valid limit name")] = []
    outputs: Annotated[list[OutputPath], msgspec.Meta(max_length=MAX_OUTPUTS), key(
        "list of paths", "Images each frame writes, `#` standing for the frame number padded "
        "to as many digits (`/shots/sh010/out.####.png`; `#FRAME#` and `%04d` work too); "
        "cuegui previews them.",
        wrong=f"outputs is a list of file paths, at most {MAX_OUTPUTS} per layer",
        item="an output is a file path, got {value}",
        item_pattern="{value} is not a usable file path")] = []


class JobFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A job, as a job file or a client gives it."""

    name: Annotated[Name, key("name", "The job's name, shown everywhere.", wrong=NAME_WORDS)]
    project: Annotated[Name, key(
        "name", "The project (OpenCue's show) the job belongs to; its fair share and members "
        "apply.", wrong=NAME_WORDS)] = "default"
    priority: Annotated[whole(-1_000_000, 1_000_000), key("whole number", "Higher runs first.")
                        ] = 50
    min_slots: Annotated[whole(0, 1 << 30), key(
        "whole number", "Slots the job gets before jobs of lower priority in its project.")] = 0
    max_slots: Annotated[Optional[whole(1, 1 << 30)], key(
        "whole number", "The most slots the job may use at once (not given: no maximum).")
    ] = None
    paused: Annotated[bool, key(
        "true or false", "Submit the job paused: nothing of it runs until it is resumed "
        "(`cuefarm resume`).")] = False
    layers: Annotated[list[LayerFile], msgspec.Meta(min_length=1), key(
        "list of layers", "At least one layer (below).",
        wrong="a job needs a list of at least one layer",
        missing="a job needs a list of at least one layer", item="a layer is a mapping")]
    # Checked by cuefarm.notify_rules, which names the entry and key at fault.
    notify: Annotated[Any, key(
        "list of rules", "Whom to tell, by e-mail or webhook, when the job finishes, a frame "
        "dies or the job dies (below). Not given: the project's rules (`cuefarm projects "
        "notify`), else the supervisor's defaults, if any; `[]`: none.")] = None


# --- the key tables, read off the Structs ----------------------------------------------------

@dataclass(frozen=True)
class Key:
    """One key of a job file: what its value is, its default, its bounds, what it means, and
    the words for a bad value.  Read off the Structs above (`keys_of`)."""

    name: str
    value: str                  # the kind of value, in words
    default: Any
    doc: str
    lo: int | None = None       # bounds of a whole number
    hi: int | None = None
    words: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


def _int_bounds(t: Any) -> tuple[int, int] | None:
    if isinstance(t, msgspec.inspect.Metadata):
        return _int_bounds(t.type)
    if isinstance(t, msgspec.inspect.IntType):
        return t.ge, t.le
    if isinstance(t, msgspec.inspect.UnionType):
        return next(filter(None, map(_int_bounds, t.types)), None)
    return None


def keys_of(kind: type[msgspec.Struct]) -> dict[str, Key]:
    """The keys of a Struct above, in the order it defines them."""
    out = {}
    for f in msgspec.inspect.type_info(kind).fields:
        meta = f.type
        words = dict(meta.extra)
        lo, hi = _int_bounds(meta) or (None, None)
        if f.required:
            default = REQUIRED
        elif f.default_factory is not msgspec.NODEFAULT:
            default = f.default_factory()
        else:
            default = f.default
        out[f.name] = Key(f.name, words.pop("value"), default,
                          (meta.extra_json_schema or {}).get("description", ""), lo, hi, words)
    return out


def whole_keys(kind: type[msgspec.Struct]) -> frozenset[str]:
    """The keys that are only whole numbers (`N`, or `"N"` in a YAML string)."""
    info = msgspec.inspect.type_info(kind)
    return frozenset(f.name for f in info.fields if _int_bounds(f.type) and not any(
        isinstance(t, msgspec.inspect.StrType) for t in getattr(f.type.type, "types", ())))


def as_whole(value: Any) -> Any:
    """`value`, or the whole number it spells (`" 12 "`: 12); msgspec judges the result."""
    if isinstance(value, str) and INT_RE.fullmatch(value.strip()):
        return int(value.strip())
    return value


# --- converting, and saying msgspec's errors in the project's words -----------------------------

KEYS: dict[type, dict[str, Key]] = {kind: keys_of(kind)
                                    for kind in (JobFile, LayerFile, DependencyFile)}
# The Struct the entries of a key are.
NESTED: dict[tuple[type, str], type] = {(JobFile, "layers"): LayerFile,
                                        (LayerFile, "depends_on"): DependencyFile}
_AT = re.compile(r"^(?P<what>.*?)(?: - at (?P<in>`key` in )?`(?P<where>\$[^`]*)`)?$", re.S)
_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[\.\.\.\]")


def show(value: Any, limit: int = 60) -> str:
    """`value` as a message quotes it: its repr, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def convert(raw: dict, kind: type, path: str, keys: dict[type, dict[str, Key]] = KEYS) -> Any:
    """`raw` as a `kind`, or a SpecError naming the field at fault below `path`."""
    try:
        return msgspec.convert(raw, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise spec_error(str(exc), raw, kind, path, keys) from None


def spec_error(text: str, raw: Any, kind: type, path: str,
               keys: dict[type, dict[str, Key]] = KEYS) -> SpecError:
    """A msgspec error about `raw` (converted to `kind`) as a SpecError with a path
    (`$.layers[0].slots` -> `job.layers[0].slots`) and the key's own words."""
    m = _AT.match(text)
    what, where = m["what"], m["where"] or "$"
    # `owner` has the key `name`; `inner` is the Struct a following `.key` belongs to.
    value, owner, inner, name, entry = raw, kind, kind, None, False
    for step in _STEP.finditer(where):
        if step[1] is not None:                  # .key
            owner, name, entry = inner, step[1], False
            value = value.get(name) if isinstance(value, dict) else None
            path += f".{name}"
        elif step[2] is not None:                # [i]: an entry of the list `name`
            inner = NESTED.get((owner, name), inner)
            value = value[int(step[2])] if isinstance(value, list) else None
            entry, path = True, path + step[0]
        else:                                    # [...]: a mapping's value msgspec cannot name
            return _mapping_error(value, owner, name, path, keys)
    if m["in"] and name is not None and not entry:
        return _mapping_error(value, owner, name, path, keys)     # a key of a mapping
    if m["in"] or what.startswith("Object contains unknown field"):
        return _unknown(value, inner, path, keys)
    if what.startswith("Object missing required field"):
        missing = what.split("`")[1]
        k = keys[inner].get(missing)
        return SpecError(f"{path}.{missing}", (k.words.get("missing") if k else None)
                         or "is required")
    k = keys[owner].get(name) if name else None
    return SpecError(path, _words(k, what, value, entry))


def _words(k: Key | None, what: str, value: Any, entry: bool) -> str:
    """What is wrong with `value` at key `k` (or with an entry of it), msgspec saying `what`."""
    if k is None:
        return what[:1].lower() + what[1:]
    if k.lo is not None and not isinstance(value, bool) and isinstance(value, int):
        return f"{value} is out of range {k.lo}..{k.hi}"
    level = "item" if entry else "wrong"
    pattern = "matching regex" in what or "of length" in what
    text = (k.words.get(level + "_pattern") if pattern else None) \
        or k.words.get(level) or k.words.get("wrong")
    if text is None:
        if k.lo is not None:
            text = "expected a whole number, got {value}"
        elif k.value == "true or false":
            text = "expected true or false, got {value}"
        else:
            return what[:1].lower() + what[1:]
    return text.format(value=show(value))


def _unknown(value: Any, struct: type, path: str, keys: dict[type, dict[str, Key]]) -> SpecError:
    """The first key of mapping `value` that `struct` does not have."""
    allowed = keys[struct]
    bad = next((k for k in value if k not in allowed), None) if isinstance(value, dict) else None
    return SpecError(f"{path}.{bad}", f"unknown key {bad!r} (allowed: "
                                      f"{', '.join(sorted(allowed))})")


def _mapping_error(value: Any, struct: type, name: str, path: str,
                   keys: dict[type, dict[str, Key]]) -> SpecError:
    """The first entry of mapping `value` (key `name` of `struct`) that is wrong: msgspec says
    what, but not which."""
    annotation = next(f.type for f in msgspec.structs.fields(struct) if f.name == name)
    key_type, value_type = typing.get_args(typing.get_args(annotation)[0])
    k = keys[struct][name]
    for item_key, item in value.items():
        try:
            msgspec.convert(item_key, key_type, strict=True)
        except msgspec.ValidationError:
            return SpecError(f"{path}.{item_key}", k.words["name"].format(value=show(item_key)))
        try:
            msgspec.convert(item, value_type, strict=True)
        except msgspec.ValidationError as exc:
            return SpecError(f"{path}.{item_key}", _words(k, str(exc), item, True))
    return SpecError(path, k.words["wrong"])
