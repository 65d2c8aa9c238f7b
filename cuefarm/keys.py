"""CURVE keys: the files that hold them, where programs find them, and setting them on sockets.

Every user, every worker and the supervisor has a key pair (ZeroMQ CURVE, made by
`zmq.curve_keypair`).  The supervisor knows which public key is which user (with a role) or
which worker (with a host name); whoever connects is who their key says, never what a message
claims.  A key file is a small TOML file:

    kind = "user"                      # user | worker | supervisor
    name = "alice"                     # the user name, or the worker's host name
    role = "artist"                    # users: artist | wrangler | admin (as issued)
    public = "<40 characters, Z85>"
    secret = "<40 characters, Z85>"    # only in the owner's copy (mode 0600)
    supervisor = "<Z85>"               # the supervisor's public key, where it was issued

Where programs look, first found wins:
- a user's key: `CUEFARM_KEY` (a path), else `<config dir>/user.key`;
- the supervisor's public key for an address: `CUEFARM_SUPERVISOR_KEY` (Z85 or a path), else
  `<config dir>/known_supervisors.toml`, by address (written by `cuefarm up`, `cuefarm keys
  init` and `cuefarm keys use`, which takes it from the `supervisor` line of a key file).
Without a supervisor key a client connects without CURVE, as to a supervisor on one machine
started without keys.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import platformdirs
import zmq
from zmq.utils import z85

KINDS = ("user", "worker", "supervisor")
Z85_LEN = 40


class KeyFileError(ValueError):
    """A key file that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Key:
    kind: str
    name: str
    public: str
    secret: str = ""
    supervisor: str = ""
    role: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)

    def public_only(self) -> "Key":
        return replace(self, secret="")


def fingerprint(public: str) -> str:
    """A short name for a public key, shown in lists: 16 hex digits of its SHA-256."""
    return hashlib.sha256(public.encode("ascii", "replace")).hexdigest()[:16]


def valid_z85(text: str) -> bool:
    if not isinstance(text, str) or len(text) != Z85_LEN:
        return False
    try:
        return len(z85.decode(text.encode("ascii"))) == 32
    except (ValueError, UnicodeEncodeError, KeyError, IndexError):
        return False


def new(kind: str, name: str, supervisor: str = "", role: str = "") -> Key:
    """A fresh key pair."""
    if kind not in KINDS:
        raise KeyFileError(f"a key is for a user, a worker or the supervisor, not {kind!r}")
    public, secret = zmq.curve_keypair()
    return Key(kind, name, public.decode("ascii"), secret.decode("ascii"), supervisor, role)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dumps(key: Key) -> str:
    lines = [f"# CueFarm {key.kind} key of {key.name}"
             + (": keep this file secret" if key.secret else " (public part)")]
    for field in ("kind", "name", "role", "public", "secret", "supervisor"):
        value = getattr(key, field)
        if value:
            lines.append(f"{field} = {_quote(value)}")
    return "\n".join(lines) + "\n"


def write(path: Path | str, key: Key, overwrite: bool = False) -> Path:
    """Write a key file; one with a secret is readable by its owner only (0600).  Refuses to
    overwrite an existing file unless told."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    mode = 0o600 if key.secret else 0o644
    try:
        fd = os.open(path, flags, mode)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; not overwriting a key") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(dumps(key))
    if key.secret:
        os.chmod(path, 0o600)      # an existing file kept its mode through O_TRUNC
    return path


def read(path: Path | str, need_secret: bool = True) -> Key:
    """Read a key file; KeyFileError says what is wrong with it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyFileError(f"no key file at {path}") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"cannot read the key file {path}: {exc}") from None
    if need_secret and data.get("secret") and hasattr(os, "getuid"):
        mode = path.stat().st_mode
        if mode & 0o077:
            raise KeyFileError(f"{path} can be read by others (mode {mode & 0o777:o}); "
                               f"make it private: chmod 600 {path}")
    kind, name = data.get("kind", ""), data.get("name", "")
    public, secret = data.get("public", ""), data.get("secret", "")
    if kind not in KINDS:
        raise KeyFileError(f"{path}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(name, str) or not name.strip():
        raise KeyFileError(f"{path}: the key names nobody (name is empty)")
    if not valid_z85(public):
        raise KeyFileError(f"{path}: public is not a CURVE public key (40 Z85 characters)")
    if need_secret and not valid_z85(secret):
        raise KeyFileError(f"{path}: holds no secret key (is it the .pub half?)")
    if secret and valid_z85(secret):
        derived = zmq.curve_public(secret.encode("ascii")).decode("ascii")
        if derived != public:
            raise KeyFileError(f"{path}: its secret and public keys do not belong together")
    supervisor = data.get("supervisor", "")
    if supervisor and not valid_z85(supervisor):
        raise KeyFileError(f"{path}: supervisor is not a CURVE public key (40 Z85 characters)")
    return Key(kind, name.strip(), public, secret or "",
               supervisor, str(data.get("role", "")))


# --- where keys live ------------------------------------------------------------------------------

def supervisor_keys_dir(configured: str = "") -> Path:
    """Where a supervisor keeps its keys: as configured, else `<data dir>/keys`."""
    from cuefarm.config import data_dir
    return Path(configured) if configured else data_dir() / "keys"


def make_supervisor_keys(directory: Path, owner: Key | None = None) -> Key:
    """Create the supervisor's key pair in `directory` and its public half (for workers and
    users to connect with); an existing one is kept.  With `owner` (a user key), note its
    public half as the owner's (an admin, recorded when the supervisor starts)."""
    path = directory / "supervisor.key"
    if path.exists():
        key = read(path)
        if key.kind != "supervisor":
            raise KeyFileError(f"{path} is a {key.kind} key, not a supervisor's")
    else:
        key = new("supervisor", "supervisor")
        write(path, key)
    pub = directory / "supervisor.pub"
    if not pub.exists():
        write(pub, key.public_only())
    if owner is not None:
        write(directory / "owner.pub", owner.public_only(), overwrite=True)
    return key


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir("cuefarm"))


def user_key_path() -> Path:
    return Path(os.environ.get("CUEFARM_KEY") or config_dir() / "user.key")


def known_supervisors_path() -> Path:
    return config_dir() / "known_supervisors.toml"


def find_user_key() -> Key | None:
    """The user's key, or None when they have none.  A key file that is there but unusable
    raises KeyFileError: a broken key must not silently mean "no key"."""
    path = user_key_path()
    if not path.exists():
        if os.environ.get("CUEFARM_KEY"):
            raise KeyFileError(f"CUEFARM_KEY names {path}, which does not exist")
        return None
    return read(path)


def _known() -> dict[str, str]:
    path = known_supervisors_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise KeyFileError(f"cannot read {path}: {exc}") from None
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def remember_supervisor(address: str, public: str) -> Path:
    """Note `public` as the key of the supervisor at `address` (host:port) for this user."""
    if not valid_z85(public):
        raise KeyFileError("not a CURVE public key (40 Z85 characters)")
    from cuefarm.config import ConfigError, parse_address
    try:
        host, port = parse_address(address)
    except ConfigError as exc:
        raise KeyFileError(str(exc)) from None
    address = f"{host}:{port}"
    known = _known()
    known[address] = public
    path = known_supervisors_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("# CueFarm: the public keys of the supervisors this user talks to\n"
                   + "".join(f"{_quote(a)} = {_quote(k)}\n" for a, k in sorted(known.items())),
                   encoding="ascii")
    os.replace(tmp, path)
    return path


def supervisor_key_for(address: str) -> str:
    """The public key of the supervisor at `address` (host:port) as this user knows it, or ""
    (then the connection is made without CURVE)."""
    given = os.environ.get("CUEFARM_SUPERVISOR_KEY", "").strip()
    if given:
        if valid_z85(given):
            return given
        try:
            return read(given, need_secret=False).public
        except KeyFileError as exc:
            raise KeyFileError(f"CUEFARM_SUPERVISOR_KEY: {exc}") from None
    return _known().get(address, "")


def secure_client(sock: zmq.Socket, key: Key | None, server_public: str) -> bool:
    """Make `sock` (not yet connected) a CURVE client of the server with `server_public`,
    authenticating with `key`.  Returns False (and sets nothing) when there is no server key.
    KeyFileError when the server has a key but the user none."""
    if not server_public:
        return False
    if key is None:
        raise KeyFileError(
            f"this supervisor uses keys and you have none: ask an admin for one "
            f"(cuefarm keys add-user) and save it as {user_key_path()}")
    sock.curve_secretkey = key.secret.encode("ascii")
    sock.curve_publickey = key.public.encode("ascii")
    sock.curve_serverkey = server_public.encode("ascii")
    return True


def secure_server(sock: zmq.Socket, key: Key, domain: str) -> None:
    """Make `sock` (not yet bound) a CURVE server with `key`, authenticated in ZAP `domain`."""
    sock.zap_domain = domain.encode("ascii")
    sock.curve_secretkey = key.secret.encode("ascii")
    sock.curve_publickey = key.public.encode("ascii")
    sock.curve_server = True
