"""Configuration: TOML files, then `CUEFARM_<SECTION>_<KEY>` environment, then flags.

Built once in each program's `main()`; nothing reads configuration at import time.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import platformdirs

DEFAULT_PORT = 9770
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"


class ConfigError(ValueError):
    pass


def data_dir() -> Path:
    """Where the embedded farm keeps its database, logs and worker state."""
    return Path(os.environ.get("CUEFARM_DATA_DIR") or platformdirs.user_data_dir("cuefarm"))


def config_files() -> list[Path]:
    """Config files in the order they apply (later wins)."""
    if os.environ.get("CUEFARM_CONFIG"):
        return [Path(p) for p in os.environ["CUEFARM_CONFIG"].split(os.pathsep) if p]
    return [Path("/etc/cuefarm/cuefarm.toml"),
            Path(platformdirs.user_config_dir("cuefarm")) / "cuefarm.toml"]


def parse_address(text: str, default_port: int = DEFAULT_PORT) -> tuple[str, int]:
    """Split 'host:port' (or 'host', or 'tcp://host:port'); raise ConfigError when malformed."""
    t = text.strip()
    if t.startswith("tcp://"):
        t = t[len("tcp://"):]
    host, sep, port = t.rpartition(":")
    if not sep:
        host, port = t, str(default_port)
    if not host or not port.isascii() or not port.isdigit() or not 0 < int(port) < 65534:
        raise ConfigError(f"{text!r} is not a supervisor address (expected HOST:PORT)")
    return host.strip("[]"), int(port)


def database_url(text: str) -> str:
    """A database URL as the supervisor reads it: `postgres://` (the spelling of libpq and
    many hosting services) is taken as `postgresql://`; anything else is left as given."""
    scheme, sep, rest = text.strip().partition("://")
    if sep and (scheme == "postgres" or scheme.startswith("postgres+")):
        return f"postgresql{scheme[len('postgres'):]}://{rest}"
    return text.strip()


# The longest heartbeat interval a supervisor may ask of its workers (seconds).  Workers take
# no longer one from anybody: a worker told to keep quiet for an hour would not notice for an
# hour that a new supervisor took the old one's place.
HEARTBEAT_MAX = 60.0


@dataclass
class SupervisorConfig:
    bind: str = "127.0.0.1"           # interface to bind; "*" for all
    port: int = DEFAULT_PORT          # client API; +1 worker link; +2 events
    db: str = ""                      # SQLAlchemy URL; empty: SQLite in the data dir
    heartbeat_interval: float = 2.0   # what workers are told to use
    host_expiry: float = 10.0         # silent this long -> DOWN
    release_after: float = 60.0       # frames of a DOWN host go back to WAITING after this
    max_frames_per_job: int = 1_000_000
    # What one submit may hold at most: beyond, it is refused (to be sent in parts).  A few
    # bytes of ranges can ask for billions of frames; a submit is checked and stored whole.
    max_frames_per_submit: int = 5_000_000
    max_layers_per_submit: int = 10_000
    dispatch_batch: int = 2000        # frames claimed per pass at most
    bad_host_failures: int = 3        # failures of one job on one host before it is kept off
    bad_host_period: float = 600.0    # for this long
    # Worker licences, metering, usage accounting and metrics.
    worker_licences: str = ""         # prepaid worker licences: a whole number, "" = no cap
    metering: bool = False            # let the farm go past the licences, billed per minute
    metering_sink: str = ""           # where overage reports go: http(s) URL, or a directory
    metering_rate: float = 0.10       # $ per overage worker-hour, billed per minute
    metering_site: str = ""           # this farm's name in reports (default: the host name)
    metering_sample: float = 5.0      # seconds between counts of workers holding a licence
    metering_retry: float = 60.0      # longest wait between deliveries to a failing sink
    usage_interval: float = 60.0      # seconds between usage accounting passes
    metrics_interval: float = 5.0     # seconds between samples of supervisor metrics
    metrics_retention: float = 600.0  # seconds between metric roll-ups and retention passes
    metrics_port: int = -1            # Prometheus endpoint: -1 = port + 3, 0 = off
    timezone: str = ""                # IANA zone lock schedules run in; empty: this machine's
    admission_mode: str = "any"       # any | ranges | named (until an admin changes it)
    admission_networks: list[str] = field(default_factory=list)   # CIDR ranges for "ranges"
    admission_patterns: list[str] = field(default_factory=list)   # host name patterns
    admission_retry: float = 60.0     # a refused worker asks again after this many seconds
    figures_interval: float = 5.0     # how often hosts' load/memory/disk figures are written
    host_history_step: float = 60.0   # seconds per point of each host's kept history
    host_history_hours: float = 24.0  # how much of it is kept
    # Roles (supervisor.access): the OS user running the supervisor is always an admin; with
    # neither list set the farm is open (everyone an admin).  Others are artists.
    admins: list[str] = field(default_factory=list)
    wranglers: list[str] = field(default_factory=list)
    # Variables that change how programs load (LD_PRELOAD, PYTHONPATH...: cuefarm.loaderenv)
    # a job may set anyway: "NAME" for every project, "PROJECT:NAME" for one; patterns work.
    loader_env_allow: list[str] = field(default_factory=list)
    audit_days: float = 365.0         # how long the audit trail is kept (0: for ever)
    # Keys (supervisor.trust): with a supervisor.key in keys_dir every socket is CURVE with an
    # allow-list; without one the supervisor runs in the clear, which it refuses on an address
    # other machines can reach unless `insecure` is set.
    keys_dir: str = ""                # default: <data dir>/keys
    insecure: bool = False
    log_level: str = "INFO"


# What a frame inherits from rqd's own environment by default: enough to find programs and
# speak the locale, nothing of rqd's own (its virtualenv, credentials, CA bundles, prompt...).
FRAME_ENV_ALLOW = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*",
                   "TZ", "TMPDIR", "TEMP", "TMP",
                   # Windows programs need these to start at all
                   "SYSTEMROOT", "SYSTEMDRIVE", "WINDIR", "COMSPEC", "PATHEXT")


# Service accounts a frame never runs as by default.
DENY_USERS = ("postgres", "mysql", "mariadb", "redis", "rabbitmq", "mosquitto", "nats",
              "memcache", "mongodb", "elasticsearch", "www-data", "nginx", "apache", "httpd",
              "sshd", "daemon", "bin", "sys", "nobody", "nfsnobody", "systemd-*", "_*")


@dataclass
class RqdConfig:
    supervisors: list[str] = field(default_factory=lambda: [DEFAULT_ADDRESS])
    name: str = ""                    # default: the hostname
    # This worker's CURVE key file (cuefarm keys add-worker), and the supervisor's public key
    # (Z85 or a .pub file).  With a supervisor key and no key file, rqd makes its own key in
    # its state dir; it waits as pending until an admin admits it (or admission is "any").
    key: str = ""
    supervisor_key: str = ""
    slots: int = 0                    # 0: one per core
    state_dir: str = ""               # default: <data dir>/rqd/<name>
    log_dir: str = ""                 # default: <state dir>/logs
    heartbeat_interval: float = 2.0   # until the supervisor says otherwise
    supervisor_timeout: float = 10.0  # no reply this long -> reconnect
    kill_grace: float = 5.0           # SIGTERM, then SIGKILL after this many seconds
    log_level: str = "INFO"
    tags: list[str] = field(default_factory=list)     # plus the os name and "gpu" (automatic)
    path_maps: list = field(default_factory=list)     # "SOURCE=TARGET" or {source, target}
    min_free_disk_mb: int = 100       # refuse frames when the log dir's disk has less free
    min_uid: int = 1000               # run-as users below this uid are refused
    # Accounts frames never run as, whatever their uid (names or patterns like systemd-*):
    # database servers, brokers and other service accounts.
    deny_users: list[str] = field(default_factory=lambda: list(DENY_USERS))
    log_keep_days: float = 30.0       # frame logs older than this are removed (0: kept for ever)
    log_max_mb: int = 0               # and the oldest beyond this many MB (0: no cap)
    log_prune_every: float = 3600.0   # seconds between prunings (the first: a minute after start)
    # Variables of rqd's own environment a frame inherits (names or patterns like LC_*); the
    # job's variables and the CUE_* ones come on top.  Nothing else of rqd's reaches a frame.
    env_allow: list[str] = field(default_factory=lambda: list(FRAME_ENV_ALLOW))
    nimby: bool = False               # lock this host while a local user is active
    nimby_idle: float = 300.0         # seconds of input idleness before unlocking
    nimby_purge: bool = False         # on an idle lock, kill the running frames (requeued)
    reboot_allowed: bool = False      # may a drain end with a reboot
    reboot_command: list[str] = field(default_factory=lambda: ["systemctl", "reboot"])

    def resolve(self) -> "RqdConfig":
        """Fill in defaults that depend on the machine."""
        if not self.name:
            self.name = socket.gethostname().split(".")[0] or "localhost"
        # As the supervisor keeps them (cuefarm.protocol.Register): it refuses longer ones.
        if len(self.name) > 256:
            raise ConfigError(f"[rqd] name is {len(self.name)} characters long; at most 256")
        for tag in self.tags:
            if len(tag) > 64:
                raise ConfigError(f"[rqd] tags: {tag[:20]!r}... is {len(tag)} characters long;"
                                  " a tag has at most 64")
        if not self.state_dir:
            self.state_dir = str(data_dir() / "rqd" / self.name)
        if not self.log_dir:
            self.log_dir = str(Path(self.state_dir) / "logs")
        return self


T = TypeVar("T")


def _coerce(name: str, current: Any, value: Any, ftype: str) -> Any:
    try:
        if ftype.startswith("list"):
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return list(value)
        if ftype == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if ftype == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if ftype == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot use {value!r} (expected {ftype})") from None


def load(cls: type[T], section: str, overrides: dict[str, Any] | None = None,
         files: list[Path] | None = None, environ: dict[str, str] | None = None) -> T:
    """Build a `cls` config from files, environment and explicit overrides (None = not given)."""
    environ = os.environ if environ is None else environ
    cfg = cls()
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for path in (config_files() if files is None else files):
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8")).get(section, {})
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        for key, value in data.items():
            if key not in fields:
                raise ConfigError(f"{path}: unknown key [{section}] {key}")
            setattr(cfg, key, _coerce(f"{path} [{section}] {key}", None, value,
                                      str(fields[key].type)))
    for key, f in fields.items():
        env_name = f"CUEFARM_{section.upper()}_{key.upper()}"
        if env_name in environ:
            setattr(cfg, key, _coerce(env_name, None, environ[env_name], str(f.type)))
    for key, value in (overrides or {}).items():
        if key not in fields:
            raise ConfigError(f"unknown setting {key!r} for [{section}]")
        if value is not None:
            setattr(cfg, key, _coerce(f"--{key}", None, value, str(fields[key].type)))
    return cfg
