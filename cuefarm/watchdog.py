"""Programs started by `cuefarm up` stop when it is gone, however it ended (even kill -9).

`up` makes a pipe, keeps its write end and hands the read end to each child, naming it in the
child's environment (CUEFARM_WATCH_FD).  Nobody ever writes to the pipe: when `up` exits, the
kernel closes the write end, a read in the child returns end-of-file, and the child stops as it
does on SIGTERM (a worker kills its frames first).  The supervisor and rqd watch by themselves;
`python -m cuefarm.watchdog MODULE ARGS...` runs another program (the desktop client) watched.
"""

from __future__ import annotations

import logging
import os
import runpy
import signal
import sys
import threading

ENV = "CUEFARM_WATCH_FD"

log = logging.getLogger("cuefarm.watchdog")


def supported() -> bool:
    """Whether children can be handed a pipe (POSIX: Popen's pass_fds)."""
    return sys.platform != "win32"


def parent_pipe() -> tuple[int, int]:
    """(read end, write end): the parent keeps the write end open for as long as it lives and
    gives the read end to children with Popen(pass_fds=[read], env={ENV: str(read), ...})."""
    return os.pipe()        # neither end is inherited unless passed


def watch_parent() -> bool:
    """If this process was handed a watch pipe, stop it (SIGTERM to itself, so its own signal
    handling runs) once the parent is gone; True when watching.  The variable is removed from
    the environment so that this process's own children do not watch the same pipe."""
    text = os.environ.pop(ENV, "")
    if not text.isdigit() or not supported():
        return False
    fd = int(text)

    def wait() -> None:
        try:
            while os.read(fd, 64):
                pass
        except OSError:
            pass            # the descriptor is not a pipe after all: treat it as gone
        log.warning("the `cuefarm up` that started this process is gone: stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="watch-parent", daemon=True).start()
    return True


def main() -> None:
    """`python -m cuefarm.watchdog MODULE ARGS...`: run MODULE as `python -m` would, stopped
    (SIGTERM) when the parent that handed it the watch pipe is gone."""
    if len(sys.argv) < 2:
        sys.exit("usage: python -m cuefarm.watchdog MODULE [ARGS...]")
    watch_parent()
    module, sys.argv = sys.argv[1], sys.argv[1:]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
