"""Facts about this machine and psutil sampling of a frame's process tree."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

MB = 1024 * 1024
NVIDIA_SMI_TIMEOUT = 10.0


def os_name() -> str:
    """The operating system as the supervisor names it: linux, windows or darwin."""
    if sys.platform.startswith("win"):
        return "windows"
    if sys.platform == "darwin":
        return "darwin"
    return "linux" if sys.platform.startswith("linux") else sys.platform


def hostname() -> str:
    return socket.gethostname()


def cores() -> int:
    return psutil.cpu_count() or 1


def memory_mb() -> int:
    return psutil.virtual_memory().total // MB


def memory_free_mb() -> int:
    return psutil.virtual_memory().available // MB


def disk_free_mb(path: str | Path) -> int:
    """Free space (MB, for unprivileged users) on the file system holding `path`.

    The directory may not exist yet: its nearest existing parent is on the same file system.
    0 when nothing can be measured.
    """
    p = Path(path).absolute()
    for candidate in (p, *p.parents):
        try:
            return shutil.disk_usage(candidate).free // MB
        except OSError:
            continue
    return 0


def gpus() -> list[str]:
    """The GPUs of this machine as "name, memory" lines from `nvidia-smi`; [] when there is no
    nvidia-smi or it fails (a worker without a driver is a worker without GPUs)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        res = subprocess.run([exe, "--query-gpu=name,memory.total", "--format=csv,noheader"],
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=NVIDIA_SMI_TIMEOUT, errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed: %s; reporting no GPUs", exc)
        return []
    if res.returncode != 0:
        log.warning("nvidia-smi exited with %d: %s; reporting no GPUs", res.returncode,
                    res.stderr.strip()[:200])
        return []
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


def hardware_tags(os_name_: str, gpu_count: int) -> list[str]:
    """Tags every worker gets from its hardware: the OS name, and "gpu" when it has GPUs."""
    return [os_name_, *(["gpu"] if gpu_count > 0 else [])]


def load_1min() -> float:
    try:
        return float(psutil.getloadavg()[0])
    except (OSError, AttributeError):
        return 0.0


def cpu_percent() -> float:
    """Machine CPU use since the previous call (the first call returns 0.0); never blocks."""
    return float(psutil.cpu_percent(interval=None))


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BOOT_TIME_TTL = 60.0        # seconds a reading of the boot time serves (it moves only with the clock)
_boot: list[float] = [-BOOT_TIME_TTL, 0.0]       # [monotonic time read, boot time]


def create_time(pid: int) -> float:
    """When process `pid` was created (epoch seconds), exactly as psutil's `create_time()`
    gives it (so the two can be compared), but read from the one /proc file on Linux: a
    frame start needs it for its record, and psutil would also read /proc/stat each time.
    Raise psutil.NoSuchProcess when there is no such process."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
            # Field 22 (starttime, clock ticks after boot); the name in () may hold anything.
            ticks = int(data[data.rindex(b")") + 2:].split()[19])
        except FileNotFoundError:
            raise psutil.NoSuchProcess(pid) from None
        except (OSError, ValueError, IndexError):
            return psutil.Process(pid).create_time()
        now = time.monotonic()
        if now - _boot[0] >= BOOT_TIME_TTL:
            _boot[:] = [now, psutil.boot_time()]
        return ticks / _CLOCK_TICKS + _boot[1]
    return psutil.Process(pid).create_time()


def same_process(pid: int, create_time: float) -> psutil.Process | None:
    """The live process `pid` if it is the one created at `create_time`, else None.

    A pid alone is not an identity: after a crash the number may belong to someone else.
    """
    if pid <= 0:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - create_time) > 0.05:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def alive(proc: psutil.Process) -> bool:
    """True while `proc` runs (a zombie is dead: it only waits to be reaped)."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


@dataclass
class TreeSample:
    """Memory and CPU of a process and all its descendants at one moment."""

    rss: int = 0
    cpu_time: float = 0.0
    descendants: list[psutil.Process] = field(default_factory=list)


def sample_tree(proc: psutil.Process) -> TreeSample | None:
    """Sum RSS and CPU time over `proc` and its descendants; None once `proc` is gone.

    CPU time includes each process's reaped children, so work of short-lived helpers that
    already exited is still counted (and never twice: a child is either alive or reaped).
    """
    try:
        descendants = proc.children(recursive=True)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
    return _measure(proc, descendants)


def sample_trees(procs: list[psutil.Process]) -> list[TreeSample | None]:
    """`sample_tree` of each of `procs`, finding all their descendants in one look at the
    process table (Linux) instead of one whole look per tree."""
    parents = process_parents()
    if parents is None:
        return [sample_tree(proc) for proc in procs]
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    out: list[TreeSample | None] = []
    for proc in procs:
        if proc.pid not in parents:
            out.append(None)
            continue
        descendants: list[psutil.Process] = []
        todo = [proc]
        while todo:
            parent = todo.pop()
            for pid in children.get(parent.pid, ()):
                try:
                    child = psutil.Process(pid)
                    # The table is a moment old: a pid reused since is not this tree's.
                    if child.create_time() < parent.create_time():
                        continue
                except psutil.Error:
                    continue
                descendants.append(child)
                todo.append(child)
        out.append(_measure(proc, descendants))
    return out


def process_parents() -> dict[int, int] | None:
    """The parent pid of every process now, from /proc (None where there is no /proc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    parents: dict[int, int] = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                data = f.read()
            # After the name in (): the state, then the parent pid.
            parents[int(name)] = int(data[data.rindex(b")") + 2:].split(None, 2)[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def _measure(proc: psutil.Process, descendants: list[psutil.Process]) -> TreeSample:
    sample = TreeSample(descendants=descendants)
    for p in [proc, *descendants]:
        try:
            with p.oneshot():
                sample.rss += p.memory_info().rss
                t = p.cpu_times()
                sample.cpu_time += (t.user + t.system + getattr(t, "children_user", 0.0)
                                    + getattr(t, "children_system", 0.0))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return sample


def process_group(pid: int) -> int:
    """The process group of `pid` (on Windows the pid itself stands for the tree)."""
    if hasattr(os, "getpgid"):
        try:
            return os.getpgid(pid)
        except OSError:
            return pid
    return pid


def signal_group(pgid: int, sig: int) -> bool:
    """Send `sig` to a whole process group; False when the group no longer exists."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(pgid, sig)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return False
    # Windows has no process groups to signal: walk the tree from its root instead.
    try:
        root = psutil.Process(pgid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return False
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass
    return True


def members_of_group(pgid: int) -> list[psutil.Process]:
    """Live processes whose process group is `pgid` (POSIX only)."""
    if not hasattr(os, "getpgid"):
        return []
    found = []
    for p in psutil.process_iter():
        try:
            if os.getpgid(p.pid) == pgid and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except (OSError, psutil.Error):
            continue
    return found
