"""The job file reference (docs/job-file.md, `cuefarm spec --reference`), written from the
keys of the job file Structs (`cuefarm.jobkeys`) so the two cannot disagree."""

from __future__ import annotations

from cuefarm.jobkeys import KEYS, REQUIRED, DependencyFile, JobFile, Key, LayerFile

REFERENCE_INTRO = """\
# Job file reference

A job file is YAML or JSON: one job (a mapping) or a list of jobs, submitted with
`cuefarm submit FILE` (`--check` validates it without submitting). Unknown keys are refused, so a
misspelt key never silently becomes a default. `resources/examples/job.yaml` is an example.

This page is generated from the definitions the supervisor validates with (`cuefarm/jobkeys.py`):
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
    """The job file reference in Markdown, written from the keys of the job file Structs."""
    lines = [REFERENCE_INTRO, "## Job", "", *_table(KEYS[JobFile]), "", "## Layer", "",
             "Each entry of a job's `layers`:", "", *_table(KEYS[LayerFile]), "",
             "## Dependencies", "",
             "Each entry of a layer's `depends_on` is a layer name of this job (`render`), or "
             "a mapping:", "", *_table(KEYS[DependencyFile]), "",
             "So `{layer: render, per_frame: true}` waits frame by frame, `{job: 12}` for all "
             "of job 12 and `{job: 12, layer: comp}` for its layer `comp`. A layer starts once "
             "all it waits for has finished (succeeded or eaten).", "", REFERENCE_TAIL]
    return "\n".join(lines)
