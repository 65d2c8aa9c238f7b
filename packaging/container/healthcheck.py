"""Container healthcheck: `python healthcheck.py supervisor` or `python healthcheck.py rqd`.

Reads the same configuration the program reads (config files, then `CUEFARM_<SECTION>_<KEY>`), so
it checks the running service the way it was set up:

- supervisor: its client API answers a ping on 127.0.0.1:PORT;
- rqd: a supervisor it is configured for lists this worker (by its configured name) as UP, so the
  check passes only once the worker registered and keeps sending heartbeats.

Exit status 0 when healthy, 1 otherwise (with the reason on stderr).
"""

from __future__ import annotations

import sys

from cuefarm import config
from cuefarm.client import Client, CueFarmError

TIMEOUT = 5.0


def check_supervisor() -> str:
    cfg = config.load(config.SupervisorConfig, "supervisor")
    with Client(f"127.0.0.1:{cfg.port}", timeout=TIMEOUT) as client:
        client.ping()
    return f"supervisor answers on port {cfg.port}"


def check_rqd() -> str:
    cfg = config.load(config.RqdConfig, "rqd").resolve()
    reasons = []
    for address in cfg.supervisors:
        try:
            with Client(address, timeout=TIMEOUT) as client:
                hosts = {h["name"]: h for h in client.hosts()}
        except CueFarmError as exc:
            reasons.append(f"{address}: {exc}")
            continue
        host = hosts.get(cfg.name)
        if host is not None and host.get("state") == "UP":
            return f"worker {cfg.name} is UP on {address}"
        reasons.append(f"{address}: worker {cfg.name} is "
                       f"{host.get('state') if host else 'not registered'}")
    raise CueFarmError("; ".join(reasons) or "no supervisor configured")


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
