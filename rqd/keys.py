"""This worker's key and the supervisor's: with them the worker link is CURVE-encrypted and the
supervisor knows the worker by its key (cuefarm.keys, supervisor.trust).

The supervisor's public key comes from `supervisor_key` (Z85, or a .pub/.key file), else, for
a supervisor on this machine, from the local farm's keys directory.  The worker's own key is
`key` (a file an admin issued: cuefarm keys add-worker), else one rqd makes in its state dir
on first start; such a key waits as pending until an admin admits the host (or the farm's
admission takes any host).  Without a supervisor key the link runs without CURVE.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cuefarm import keys as keyfiles
from cuefarm.config import ConfigError, RqdConfig, parse_address

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def supervisor_key(cfg: RqdConfig) -> str:
    given = cfg.supervisor_key.strip()
    if given:
        if keyfiles.valid_z85(given):
            return given
        try:
            return keyfiles.read(given, need_secret=False).public
        except keyfiles.KeyFileError as exc:
            raise ConfigError(f"supervisor_key: {exc}") from None
    if all(parse_address(a)[0] in LOOPBACK for a in cfg.supervisors):
        local = keyfiles.supervisor_keys_dir() / "supervisor.pub"
        if local.exists():
            try:
                return keyfiles.read(local, need_secret=False).public
            except keyfiles.KeyFileError as exc:
                raise ConfigError(f"the local farm's key: {exc}") from None
    return ""


def worker_keys(cfg: RqdConfig) -> tuple[keyfiles.Key | None, str]:
    """(this worker's key, the supervisor's public key); (None, "") without keys."""
    server = supervisor_key(cfg)
    if not server:
        if cfg.key:
            raise ConfigError("--key given but not the supervisor's key: set supervisor_key "
                              "(its Z85 text or its supervisor.pub file)")
        return None, ""
    try:
        if cfg.key:
            key = keyfiles.read(cfg.key)
        else:
            path = Path(cfg.state_dir) / "worker.key"
            if not path.exists():
                keyfiles.write(path, keyfiles.new("worker", cfg.name, supervisor=server))
                log.info("made this worker's key %s; until an admin admits it (unless the farm "
                         "admits any host) it waits as pending", path)
            key = keyfiles.read(path)
    except keyfiles.KeyFileError as exc:
        raise ConfigError(str(exc)) from None
    if key.kind != "worker":
        raise ConfigError(f"the key {cfg.key or key.name} is a {key.kind} key, not a worker's")
    if key.name != cfg.name:
        raise ConfigError(f"the key was issued for host {key.name}, but this worker is named "
                          f"{cfg.name} (give --name {key.name}, or a key for {cfg.name})")
    log.info("worker key %s (%s); supervisor key %s", key.name, key.fingerprint,
             keyfiles.fingerprint(server))
    return key, server
