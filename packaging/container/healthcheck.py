"""Container healthcheck: `python healthcheck.py supervisor` or `python healthcheck.py rqd`.

Reads the same configuration the program reads (config files, then `CUEFARM_<SECTION>_<KEY>`), so
it checks the running service the way it was set up:

- supervisor: its client API answers a ping on 127.0.0.1:PORT.  With keys (a supervisor.key in
  its keys directory) the ping is made with the admin's key kept beside it (`admin.key`, which
  the image makes on first start: farmkeys.py), else with the container user's own key;
- rqd: the worker is registered with a supervisor it is configured for and keeps its link (rqd
  notes that in its state directory, and the note counts only while rqd runs).  The check asks
  no supervisor: a worker has a worker's key, which the client API does not take.

Exit status 0 when healthy, 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import sys

from cuefarm import config
from cuefarm import keys as keyfiles
from cuefarm.client import Client, CueFarmError

TIMEOUT = 5.0


def check_supervisor() -> str:
    cfg = config.load(config.SupervisorConfig, "supervisor")
    directory = keyfiles.supervisor_keys_dir(cfg.keys_dir)
    key, server = None, None
    if (directory / "supervisor.key").exists():
        try:
            server = keyfiles.read(directory / "supervisor.key", need_secret=False).public
            admin = directory / "admin.key"
            key = keyfiles.read(admin) if admin.exists() else keyfiles.find_user_key()
        except keyfiles.KeyFileError as exc:
            raise CueFarmError(str(exc)) from None
        if key is None:
            raise CueFarmError(f"the supervisor uses keys and this check has none: put a "
                               f"user key at {directory / 'admin.key'}")
    with Client(f"127.0.0.1:{cfg.port}", timeout=TIMEOUT, key=key,
                supervisor_key=server) as client:
        client.ping()
    return f"supervisor answers on port {cfg.port}" + (" (with keys)" if server else "")


def check_rqd() -> str:
    from rqd.state import registered_in
    cfg = config.load(config.RqdConfig, "rqd").resolve()
    note = registered_in(cfg.state_dir)
    if not note:
        raise CueFarmError(f"worker {cfg.name} is not registered with a supervisor "
                           f"(no rqd running on {cfg.state_dir}, or not registered yet)")
    return f"worker {cfg.name}: {note}"


def main(argv: list[str]) -> int:
    checks = {"supervisor": check_supervisor, "rqd": check_rqd}
    if len(argv) != 2 or argv[1] not in checks:
        print(f"usage: {argv[0]} supervisor|rqd", file=sys.stderr)
        return 2
    try:
        print(checks[argv[1]]())
    except (CueFarmError, config.ConfigError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
