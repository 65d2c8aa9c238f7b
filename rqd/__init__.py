"""rqd: the CueFarm worker daemon.

It registers with a supervisor over the worker link (with its tags, GPUs, free disk, idle lock
and its own path rules), heartbeats with what it runs, launches each frame as a process in its
own process group with its output in a per-attempt log (paths translated for this host, as the
job's user when rqd runs as root), refuses frames it cannot honour, kills frame trees on
request, locks itself while a local user is active (when enabled), drains on request, and keeps
every completion until the supervisor acknowledges it.
"""
