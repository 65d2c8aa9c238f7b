"""Environment variables that change how programs load, and who may set them in a job.

A job's `env` reaches every frame on every worker.  Variables such as LD_PRELOAD or PYTHONPATH
change what code a program loads: set by a job they would run the submitter's code inside
other programs (the renderer, a shell, a licence tool) on every node.  The supervisor refuses
them at submit unless its `loader_env_allow` setting allows them, farm-wide (`"PYTHONPATH"`)
or for one project (`"lighting:PYTHONPATH"`); patterns such as `LD_*` work in both.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

# Dynamic loaders (glibc, macOS), interpreters' module paths and start-up hooks, shells'
# start-up files, JVM agents.
LOADER_ENV = ("LD_*", "DYLD_*", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE",
              "PYTHONEXECUTABLE", "PYTHONINSPECT", "PERL5LIB", "PERLLIB", "PERL5OPT",
              "RUBYLIB", "RUBYOPT", "NODE_OPTIONS", "NODE_PATH", "BASH_ENV", "ENV",
              "GCONV_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS")


def is_loader(name: str) -> bool:
    return any(fnmatchcase(name.upper(), pat) for pat in LOADER_ENV)


def allowed(name: str, project: str, allow: list[str]) -> bool:
    """Whether `allow` (entries "NAME" or "PROJECT:NAME", names may be patterns) lets jobs
    of `project` set `name`."""
    for entry in allow:
        scope, sep, pattern = entry.rpartition(":")
        if sep and scope != project:
            continue
        if fnmatchcase(name, pattern.strip()):
            return True
    return False


def refused(env: dict[str, str], project: str, allow: list[str]) -> list[str]:
    """The names in `env` a job of `project` may not set, in order."""
    return [k for k in env if is_loader(k) and not allowed(k, project, allow)]
