"""Whether this worker can honour a launch, and the launch as this host must run it.

The supervisor chooses a worker from what the worker last reported; by the time the launch
arrives memory may be taken, the disk full, or the job's user unknown here.  The worker has the
last word: it refuses (with a reason the supervisor records) rather than start a frame that
cannot run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import msgspec

from cuefarm import pathmap
from cuefarm import protocol as p
from rqd import accounts
from rqd.accounts import RunAs, RunAsError

log = logging.getLogger(__name__)

# Refusal reasons the supervisor may recognise by their start.
STOPPING = "rqd is stopping"
DRAINING = "draining"
IDLE_LOCKED = "idle-locked: local user active"


class Refusal(Exception):
    """The launch cannot be honoured here; the message is the reason sent to the supervisor."""


@dataclass
class Prepared:
    """A launch ready to run on this host."""

    launch: p.Launch                                # paths translated for this host
    run_as: RunAs | None = None                     # None: rqd's own user
    submitted_command: list[str] | str | None = None    # before translation, when it changed


def resource_refusal(*, memory_mb: int, memory_free_mb: int, reserved_mb: int,
                     disk_free_mb: int, min_free_disk_mb: int, log_dir: str) -> str:
    """Why the machine cannot take a frame that needs `memory_mb` now ("" when it can).

    `reserved_mb` is memory promised to frames already running but not yet used by them: a
    frame launched a second ago has not allocated its memory yet.
    """
    available = memory_free_mb - reserved_mb
    if memory_mb > 0 and memory_mb > available:
        return (f"not enough free memory: {max(available, 0)} MB available, "
                f"{memory_mb} MB asked")
    if disk_free_mb < min_free_disk_mb:
        return (f"not enough free disk for logs in {log_dir}: {disk_free_mb} MB free, "
                f"{min_free_disk_mb} MB required")
    return ""


def prepare(launch: p.Launch, own_rules: list[p.PathRule], target_os: str, min_uid: int,
            switch_user: bool, deny_users: tuple[str, ...] | list[str] = ()) -> Prepared:
    """Translate the launch's paths and resolve its user; raise Refusal when it cannot run here."""
    run_as = None
    if launch.run_as:
        if switch_user:
            try:
                run_as = accounts.resolve(launch.run_as, min_uid, deny_users)
            except RunAsError as exc:
                raise Refusal(str(exc)) from None
        else:
            log.debug("%s: run as %r ignored: rqd is not root, the frame runs as rqd's user",
                      launch.attempt_id, launch.run_as)
    central = []
    for rule in launch.path_maps:
        problem = pathmap.rule_problem(rule)
        if problem:
            log.warning("%s: ignoring a path rule from the supervisor: %s",
                        launch.attempt_id, problem)
        else:
            central.append(rule)
    rules = pathmap.merge_rules(central, own_rules)
    if not rules:
        return Prepared(launch, run_as)
    command = pathmap.translate_command(rules, launch.command, target_os)
    translated = msgspec.structs.replace(
        launch, command=command, env=pathmap.translate_env(rules, launch.env, target_os),
        cwd=pathmap.translate_path(rules, launch.cwd, target_os) if launch.cwd else launch.cwd)
    return Prepared(translated, run_as,
                    launch.command if command != launch.command else None)
