"""The limit on open files of a long-running farm process.

Each connected worker, client and subscriber holds a file in the supervisor, and each running
frame several in rqd (its log, its pidfd, its pipes).  The common soft limit of 1,024 kept a
farm of more workers than that out of its supervisor, and would stop a worker of a few hundred
slots; the hard limit is what the administrator allows, so both processes lift the soft limit
to it when they start.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def lift_limit() -> int | None:
    """Lift this process's soft limit on open files to its hard limit; the soft limit now
    (None: no such limit here, as on Windows)."""
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
            soft = want
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open files limit from %d to %d: %s", soft, want,
                        exc)
    return soft
