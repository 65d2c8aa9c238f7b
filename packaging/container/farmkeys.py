"""Keys for a farm in containers, with nobody copying files by hand.

    python farmkeys.py supervisor [FLAGS...]
        The supervisor image's entry point.  On first start (no supervisor.key in the keys
        directory, `<data dir>/keys` or [supervisor] keys_dir) make the supervisor's keys and an
        admin's key beside them, `admin.key` (recorded as the owner's when the supervisor starts;
        the healthcheck pings with it, and you copy it out to run the farm); then run the
        supervisor with FLAGS.  Existing keys are never replaced.  A supervisor told to run
        insecure (`--insecure`, CUEFARM_SUPERVISOR_INSECURE) gets no keys made.

    python farmkeys.py workers --dir DIR NAME...
        Run against a running supervisor (CUEFARM_SUPERVISOR), with its data volume: publish the
        supervisor's public key as DIR/supervisor.pub and issue each worker NAME a key,
        DIR/NAME.key, through the admin's key (once: a key file already there is kept, and
        recorded again if the supervisor has never seen it; a revoked one stays revoked).
        Workers given DIR read-only start with `key` and `supervisor_key` from there.

Exit status 0 when done, 1 with the reason on stderr otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import replace
from pathlib import Path

from cuefarm import config
from cuefarm import keys as keyfiles
from cuefarm.client import Client, CueFarmError

ADMIN = "admin"          # the user name of the admin's key made on first start
HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,255}", re.ASCII)


def say(text: str) -> None:
    print(f"farmkeys: {text}", file=sys.stderr, flush=True)


def flag_value(args: list[str], name: str) -> str | None:
    """The value of `--name VALUE` or `--name=VALUE` among the supervisor's flags."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def make_supervisor_keys(directory: Path) -> keyfiles.Key | None:
    """The supervisor's keys and the admin's in `directory`, unless it has a supervisor key
    already (then None).  They are made beside it and the supervisor key moved in last, so a
    start cut short leaves no supervisor key without its admin."""
    if (directory / "supervisor.key").exists():
        return None
    admin_path = directory / "admin.key"
    admin = (keyfiles.read(admin_path) if admin_path.exists()
             else keyfiles.new("user", ADMIN, role="admin"))
    if admin.kind != "user":
        raise keyfiles.KeyFileError(f"{admin_path} is a {admin.kind} key, not a user's")
    staging = directory.with_name(directory.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    sv = keyfiles.make_supervisor_keys(staging, owner=admin)
    keyfiles.write(staging / "admin.key", replace(admin, supervisor=sv.public, role="admin"))
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("supervisor.pub", "owner.pub", "admin.key", "supervisor.key"):
        os.replace(staging / name, directory / name)
    staging.rmdir()
    return sv


def supervisor(args: list[str]) -> int:
    try:
        cfg = config.load(config.SupervisorConfig, "supervisor")
    except config.ConfigError:
        cfg = None                  # the supervisor says what is wrong with its settings
    if cfg is not None:
        directory = keyfiles.supervisor_keys_dir(flag_value(args, "--keys-dir") or cfg.keys_dir)
        if cfg.insecure or "--insecure" in args:
            if (directory / "supervisor.key").exists():
                say(f"told to run insecure, but the supervisor has keys in {directory}: it "
                    f"uses them")
            else:
                say("INSECURE: told to run without keys, so none are made: anyone who "
                    "reaches the supervisor's ports may claim to be any user")
        else:
            try:
                sv = make_supervisor_keys(directory)
            except (keyfiles.KeyFileError, OSError) as exc:
                say(f"cannot make the supervisor's keys in {directory}: {exc}")
                return 1
            if sv is not None:
                say(f"made the supervisor's keys in {directory} ({sv.fingerprint}) and an "
                    f"admin's key, {directory / 'admin.key'}: copy it out to use the farm")
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", "supervisor", *args])
    return 1                        # not reached


def issue(client: Client, out: Path, name: str, known: dict[str, dict]) -> str:
    """Make sure worker `name` has a key file in `out` that the supervisor knows."""
    path = out / f"{name}.key"
    if path.exists():
        key = keyfiles.read(path)
        if key.kind != "worker" or key.name != name:
            raise keyfiles.KeyFileError(f"{path} is the {key.kind} key of {key.name}, not "
                                        f"worker {name}'s")
        row = known.get(key.fingerprint)
        if row is None:
            client.add_key("worker", name, key.public, "")
            return f"{name}: {path} recorded again ({key.fingerprint})"
        if row.get("revoked_at"):
            return (f"{name}: its key {key.fingerprint} is revoked and stays so (remove "
                    f"{path} to have a new one issued)")
        return f"{name}: has its key ({key.fingerprint})"
    key = keyfiles.new("worker", name)
    keyfiles.write(path, key)       # before the supervisor knows it: no key without its file
    try:
        row = client.add_key("worker", name, key.public, "")
    except BaseException:
        path.unlink()
        raise
    keyfiles.write(path, replace(key, supervisor=row["supervisor"]), overwrite=True)
    return f"{name}: issued {path} ({row['fingerprint']})"


def workers(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="farmkeys.py workers")
    parser.add_argument("--dir", required=True, type=Path,
                        help="where the supervisor's public key and the workers' keys go")
    parser.add_argument("names", nargs="+", metavar="NAME", help="the workers' host names")
    args = parser.parse_args(argv)
    for name in args.names:         # each names a file in --dir, too
        if not HOST_NAME.fullmatch(name):
            say(f"worker name {name!r} is not a host name (letters, digits, . _ - @)")
            return 1
    try:
        cfg = config.load(config.SupervisorConfig, "supervisor")
    except config.ConfigError as exc:
        say(str(exc))
        return 1
    directory = keyfiles.supervisor_keys_dir(cfg.keys_dir)
    if not (directory / "supervisor.key").exists():
        say(f"the supervisor has no keys in {directory} (it runs insecure): no keys to issue")
        return 0
    try:
        sv = keyfiles.read(directory / "supervisor.key", need_secret=False)
        admin = keyfiles.read(directory / "admin.key")
        args.dir.mkdir(parents=True, exist_ok=True)
        published = args.dir / "supervisor.pub"
        if (not published.exists()
                or keyfiles.read(published, need_secret=False).public != sv.public):
            tmp = args.dir / "supervisor.pub.new"
            tmp.unlink(missing_ok=True)
            keyfiles.write(tmp, sv.public_only())
            os.replace(tmp, published)
        say(f"the supervisor's public key: {published} ({sv.fingerprint})")
        with Client(timeout=30, key=admin, supervisor_key=sv.public) as client:
            known = {r["fingerprint"]: r for r in client.keys(include_revoked=True)}
            for name in args.names:
                say(issue(client, args.dir, name, known))
    except (keyfiles.KeyFileError, CueFarmError, OSError) as exc:
        say(f"cannot issue the workers' keys: {exc}")
        return 1
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[1] == "supervisor":
        return supervisor(argv[2:])
    if len(argv) >= 2 and argv[1] == "workers":
        return workers(argv[2:])
    print(f"usage: {argv[0]} supervisor [FLAGS...] | workers --dir DIR NAME...",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
