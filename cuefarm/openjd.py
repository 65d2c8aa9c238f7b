"""Open Job Description job templates (specificationVersion `jobtemplate-2023-09`) as job files.

The template is decoded, validated and instantiated with the `openjd-model` library (the job
parameters given with `-p Name=Value` fill in its `{{Param.*}}`), then mapped:

- each step becomes a layer, its `dependencies` the layer's `depends_on`;
- a step whose parameter space is one INT parameter (or one CHUNK[INT] parameter) keeps its
  numbers as the layer's frame range, `{{Task.Param.X}}` becoming `#FRAME#` (a chunk becomes
  `#FRAME_START#-#FRAME_END#`, the layer's `chunk` the chunk size);
- any other space (STRING values, several parameters, combination expressions) is numbered
  1..N, one frame per task, and each frame runs its own task's command line;
- embedded files are written into the frame's working directory before the command runs;
- environments that only set `variables` become the layer's `env`; host requirements on
  vCPUs, memory, GPUs and the OS family become slots, memory, gpus and os.

Whatever cannot be honoured (environment scripts, adaptive chunking, other host requirements,
notify-then-terminate cancelation, ...) is refused with a SpecError naming where it is in the
template: a template never runs differently from what it says.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

from cuefarm import spec

SPECIFICATION = "jobtemplate-2023-09"
SUPPORTED_EXTENSIONS = ("TASK_CHUNKING",)
# Tasks of a step mapped one command line per frame: each is written into the frame's command.
MAX_LISTED_TASKS = 10_000
# All of them go into one `sh -c` argument: at most what a program can be started with.
MAX_SCRIPT_BYTES = spec.MAX_EXEC_STRING - 1
# Stands for the frame's working directory while format strings are resolved.
_WORKDIR = "\x01CUEFARM_WORKDIR\x01"
_OS_FAMILIES = {"linux": "linux", "windows": "windows", "macos": "darwin"}


def is_template(d: Any) -> bool:
    """Whether a loaded document is an OpenJD template rather than a CueFarm job."""
    return isinstance(d, dict) and "specificationVersion" in d


def parse_parameters(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """`["Name=Value", ...]` (the -p options) as a mapping; SpecError for a malformed one."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise spec.SpecError("-p", f"{pair!r}: a job parameter is given as Name=Value")
        out[name.strip()] = value
    return out


def to_jobs(template: dict[str, Any], parameters: dict[str, Any] | None = None,
            source: str = "template", template_dir: Path | None = None) -> list[dict[str, Any]]:
    """Map one OpenJD job template to a list of one CueFarm job dict; SpecError (its field
    starting with `source`) for a template that is invalid or uses what CueFarm cannot honour."""
    try:
        import openjd.model as oj
    except ImportError:     # a broken install: it is a dependency
        raise spec.SpecError(source, "reading OpenJD templates needs the openjd-model "
                                     "package") from None
    version = template.get("specificationVersion")
    if version != SPECIFICATION:
        raise spec.SpecError(f"{source}.specificationVersion",
                             f"{version!r} is not supported (only {SPECIFICATION!r})")
    try:
        decoded = oj.decode_job_template(template=template,
                                         supported_extensions=list(SUPPORTED_EXTENSIONS))
        here = template_dir or Path.cwd()
        values = oj.preprocess_job_parameters(
            job_template=decoded, job_parameter_values=dict(parameters or {}),
            job_template_dir=here, current_working_dir=Path.cwd())
        job = oj.create_job(job_template=decoded, job_parameter_values=values)
    except (oj.DecodeValidationError, oj.ModelValidationError, ValueError) as exc:
        raise spec.SpecError(source, _one_line(exc)) from None
    return [_Mapper(oj, job, source).job()]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _name(text: str, path: str) -> str:
    """A free-text OpenJD name as a CueFarm name: other characters become '_'."""
    name = re.sub(r"[^A-Za-z0-9_.\-]", "_", text.strip())[:128].lstrip("_.-")
    if not name:
        raise spec.SpecError(path, f"{text!r} has no letter or digit to name a job or layer by")
    return name


class _Mapper:
    def __init__(self, oj: Any, job: Any, source: str):
        self.oj, self.openjd_job, self.source = oj, job, source
        self.params: dict[str, str] = {}
        for name, p in (job.parameters or {}).items():
            self.params[f"Param.{name}"] = str(p.value)
            self.params[f"RawParam.{name}"] = str(p.value)

    def job(self) -> dict[str, Any]:
        j = self.openjd_job
        env = self._environments(j.jobEnvironments, f"{self.source}.jobEnvironments")
        layers, names = [], {}
        for i, step in enumerate(j.steps):
            layer = self._layer(step, f"{self.source}.steps[{i}]", env)
            if layer["name"] in names.values():
                raise spec.SpecError(f"{self.source}.steps[{i}].name",
                                     f"{step.name!r} and another step both become layer "
                                     f"{layer['name']!r}")
            names[step.name] = layer["name"]
            layers.append(layer)
        for i, (step, layer) in enumerate(zip(j.steps, layers)):
            deps = [names[d.dependsOn] for d in (step.dependencies or [])]
            if deps:
                layer["depends_on"] = deps
        return {"name": _name(j.name, f"{self.source}.name"), "layers": layers}

    def _environments(self, envs: Any, path: str) -> dict[str, str]:
        """Environments that only set variables; refuse any with a script."""
        out: dict[str, str] = {}
        for i, env in enumerate(envs or []):
            if env.script is not None:
                raise spec.SpecError(f"{path}[{i}]", f"environment {env.name!r} runs a script "
                                     "on entering or leaving a session, which CueFarm cannot "
                                     "do; only environments setting variables are supported")
            for k, v in (env.variables or {}).items():
                out[k] = self._resolve(v, {}, f"{path}[{i}].variables.{k}")
        return out

    def _resolve(self, fmt: Any, task: dict[str, str], path: str) -> str:
        symtab = self.oj.SymbolTable()
        for k, v in {**self.params, **task}.items():
            symtab[k] = v
        symtab["Session.WorkingDirectory"] = _WORKDIR
        try:
            return fmt.resolve(symtab=symtab)
        except (ValueError, self.oj.ExpressionError) as exc:
            raise spec.SpecError(path, _one_line(exc)) from None

    def _layer(self, step: Any, path: str, job_env: dict[str, str]) -> dict[str, Any]:
        env = {**job_env, **self._environments(step.stepEnvironments,
                                               f"{path}.stepEnvironments")}
        layer: dict[str, Any] = {"name": _name(step.name, f"{path}.name")}
        layer.update(self._host_requirements(step.hostRequirements, f"{path}.hostRequirements"))
        run = step.script.actions.onRun
        if run.cancelation is not None and str(run.cancelation.mode.value) != "TERMINATE":
            raise spec.SpecError(f"{path}.script.actions.onRun.cancelation",
                                 f"mode {run.cancelation.mode.value}: CueFarm ends a frame by "
                                 "terminating it; only TERMINATE is supported")
        if run.timeout is not None:
            layer["timeout"] = int(run.timeout)
        space = step.parameterSpace
        single = self._single_int(space, path)
        if single is not None:
            name, numbers, chunk = single
            token = "#FRAME#" if chunk is None else "#FRAME_START#-#FRAME_END#"
            task = {f"Task.Param.{name}": token, f"Task.RawParam.{name}": token}
            layer["range"] = _range_text(numbers)
            if chunk is not None:
                layer["chunk"] = chunk
            layer["command"] = self._command(step, task, path)
        else:
            layer.update(self._listed(step, space, path))
        if env:
            layer["env"] = env
        return layer

    def _single_int(self, space: Any, path: str) -> tuple[str, list[int], int | None] | None:
        """(name, numbers, chunk size) of a space of one INT or CHUNK[INT] parameter."""
        if space is None:
            return None
        defs = space.taskParameterDefinitions
        if len(defs) != 1:
            return None
        (name, d), = defs.items()
        kind = str(d.type.value)
        if kind not in ("INT", "CHUNK[INT]"):
            return None
        numbers = list(d.range) if isinstance(d.range, list) else list(d.range)
        numbers = [int(n) for n in numbers]
        chunk = None
        if kind == "CHUNK[INT]":
            chunks = d.chunks
            where = f"{path}.parameterSpace.taskParameterDefinitions.{name}.chunks"
            if chunks.targetRuntimeSeconds is not None:
                raise spec.SpecError(where, "adaptive chunking (targetRuntimeSeconds) is not "
                                            "supported: CueFarm's chunks have a fixed size")
            if str(chunks.rangeConstraint.value) != "CONTIGUOUS":
                raise spec.SpecError(where, "only CONTIGUOUS chunks are supported")
            if numbers != list(range(numbers[0], numbers[0] + len(numbers))):
                raise spec.SpecError(where, "contiguous chunks of frame numbers with gaps are "
                                            "not supported")
            chunk = int(chunks.defaultTaskCount)
        return name, numbers, chunk

    def _listed(self, step: Any, space: Any, path: str) -> dict[str, Any]:
        """A space that is not one whole-number range: frames 1..N, each running its task."""
        if space is None:       # one task
            return {"range": "1", "command": self._command(step, {}, path)}
        tasks = list(self.oj.StepParameterSpaceIterator(space=space))
        if len(tasks) > MAX_LISTED_TASKS:
            raise spec.SpecError(f"{path}.parameterSpace",
                                 f"{len(tasks):,} tasks: a space other than one INT range is "
                                 f"written out task by task, up to {MAX_LISTED_TASKS:,}")
        for name, d in space.taskParameterDefinitions.items():
            if str(d.type.value) not in ("INT", "STRING", "FLOAT", "PATH"):
                raise spec.SpecError(
                    f"{path}.parameterSpace.taskParameterDefinitions.{name}",
                    f"a {d.type.value} parameter is supported only as a step's single "
                    "task parameter")
        lines = []
        for n, task in enumerate(tasks, start=1):
            symbols = {}
            for name, value in task.items():
                symbols[f"Task.Param.{name}"] = str(value.value)
                symbols[f"Task.RawParam.{name}"] = str(value.value)
            lines.append((n, self._script(step, symbols, path)))
        body = "\n".join(f"{n}) {text}\n;;" for n, text in lines)
        script = f'case "$CUE_FRAME" in\n{body}\n*) echo "no task $CUE_FRAME" >&2; exit 2;;\nesac'
        size = len(script.encode())
        if size > MAX_SCRIPT_BYTES:
            raise spec.SpecError(f"{path}.parameterSpace", f"the tasks' command lines take "
                                 f"{size:,} bytes; one layer's, in one shell argument, at most "
                                 f"{MAX_SCRIPT_BYTES:,}: split the step")
        return {"range": f"1-{len(tasks)}", "command": ["sh", "-c", script, "sh"]}

    def _command(self, step: Any, task: dict[str, str], path: str) -> list[str]:
        """The command of a whole-number step: its argv, or a shell line when it writes
        embedded files or names the working directory."""
        argv = self._argv(step, task, path)
        if step.script.embeddedFiles or any(_WORKDIR in w for w in argv):
            return ["sh", "-c", self._script(step, task, path), "sh"]
        return argv

    def _argv(self, step: Any, task: dict[str, str], path: str) -> list[str]:
        run = step.script.actions.onRun
        where = f"{path}.script.actions.onRun"
        files = {}
        for i, f in enumerate(step.script.embeddedFiles or []):
            files[f"Task.File.{f.name}"] = f"{_WORKDIR}/{f.filename or 'openjd-' + f.name}"
        words = [self._resolve(run.command, {**task, **files}, f"{where}.command")]
        words += [self._resolve(a, {**task, **files}, f"{where}.args[{i}]")
                  for i, a in enumerate(run.args or [])]
        return words

    def _script(self, step: Any, task: dict[str, str], path: str) -> str:
        """A shell line writing the embedded files into the working directory, then running
        the command."""
        parts = []
        for i, f in enumerate(step.script.embeddedFiles or []):
            where = f"{path}.script.embeddedFiles[{i}]"
            fname = f.filename or f"openjd-{f.name}"
            files = {f"Task.File.{e.name}": f"{_WORKDIR}/{e.filename or 'openjd-' + e.name}"
                     for e in step.script.embeddedFiles}
            data = self._resolve(f.data, {**task, **files}, f"{where}.data")
            target = _shell_word(f"{_WORKDIR}/{fname}")
            parts.append(f"printf '%s' {_shell_word(data)} > {target}")
            if f.runnable:
                parts.append(f"chmod +x {target}")
        parts.append("exec " + " ".join(_shell_word(w) for w in self._argv(step, task, path)))
        return " && ".join(parts)

    def _host_requirements(self, req: Any, path: str) -> dict[str, Any]:
        """vCPUs, memory and GPUs (their minimum as the frame's slots, memory and gpus,
        a maximum as a host requirement), the OS family, and custom attributes as host tags
        (`attr.custom.X` anyOf [A, B]: a host tagged A or B)."""
        out: dict[str, Any] = {}
        terms: list[str] = []
        if req is None:
            return out
        keys = {"amount.worker.vcpu": ("slots", "cores"), "amount.worker.memory":
                ("memory", "memory"), "amount.worker.gpu": ("gpus", "gpus")}
        for i, a in enumerate(req.amounts or []):
            if a.name not in keys:
                raise spec.SpecError(f"{path}.amounts[{i}]", f"host requirement {a.name!r} is "
                                     "not supported (amount.worker.vcpu, amount.worker.memory, "
                                     "amount.worker.gpu)")
            key, attribute = keys[a.name]
            if a.min is not None and int(a.min) > 0:
                out[key] = int(a.min)
            if a.max is not None:
                terms.append(f"host.{attribute} <= {int(a.max)}")
        for i, a in enumerate(req.attributes or []):
            where = f"{path}.attributes[{i}]"
            values = list(a.anyOf or a.allOf or [])
            join = " or " if a.anyOf else " and "
            if a.name == "attr.worker.os.family":
                oses = [_OS_FAMILIES.get(v.lower()) for v in values]
                if None in oses:
                    raise spec.SpecError(where, "OS families are linux, windows and macos")
                if len(oses) == 1 and a.anyOf:
                    out["os"] = oses[0]
                else:
                    terms.append("(" + join.join(f'host.os == "{o}"' for o in oses) + ")")
            elif a.name.startswith("attr.custom."):
                for v in values:
                    if not spec.TAG_RE.fullmatch(v):
                        raise spec.SpecError(where, f"{v!r} cannot be a host tag (letters, "
                                             "digits, '_', '.', '-')")
                terms.append("(" + join.join(f'"{v}" in host.tags' for v in values) + ")")
            else:
                raise spec.SpecError(where, f"host requirement {a.name!r} is not supported "
                                     "(attr.worker.os.family, attr.custom.*)")
        if terms:
            out["requirements"] = " and ".join(terms)
        return out


def _shell_word(text: str) -> str:
    """One shell word; the working directory placeholder becomes "$PWD"."""
    pieces = text.split(_WORKDIR)
    return '"$PWD"'.join(shlex.quote(p) if p else "" for p in pieces) or "''"


def _range_text(numbers: list[int]) -> str:
    """Frame numbers as a range string (`1-9x2`, `1,4,7`)."""
    import fileseq

    return fileseq.framesToFrameRange(numbers, sort=False)
