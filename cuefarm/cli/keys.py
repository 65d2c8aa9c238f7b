"""`cuefarm keys`: the supervisor's keys, users' and workers' keys, issued, listed and revoked.

A key pair is made where it will be used (or by the admin issuing it); only its public half is
sent to the supervisor.  See cuefarm.keys for the files and where programs find them.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import click

from cuefarm import keys as keyfiles
from cuefarm.cli.options import Settings, json_option, pass_settings
from cuefarm.cli.output import print_json, print_table
from cuefarm.client import current_user


def _fail(exc: Exception) -> None:
    raise click.ClickException(str(exc))


@click.group("keys")
def keys() -> None:
    """Keys: who may use the farm (users) and work for it (workers).

    \b
    On the supervisor's machine, once:   cuefarm keys init     (then restart the supervisor)
    Issue a user a key:                  cuefarm keys add-user alice --role artist
    The user installs it:                cuefarm keys use alice.key
    Issue a worker a key:                cuefarm keys add-worker node01   (rqd --key node01.key)
    """


def _remember(addresses: str, public: str) -> None:
    for address in addresses.split(","):
        if address.strip():
            keyfiles.remember_supervisor(address.strip(), public)


@keys.command("init")
@click.option("--keys-dir", type=click.Path(file_okay=False),
              help="The supervisor's keys directory (default: <data dir>/keys, or "
                   "[supervisor] keys_dir).")
@click.option("--name", default=None, help="Your user name on the farm (default: your login).")
@pass_settings
def init(settings: Settings, keys_dir: str | None, name: str | None) -> None:
    """Give the supervisor keys, and you an admin's key.  Run it on the supervisor's machine
    as the user the supervisor runs as; restart the supervisor after."""
    from cuefarm.config import ConfigError, SupervisorConfig, load
    try:
        configured = load(SupervisorConfig, "supervisor").keys_dir
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    directory = Path(keys_dir) if keys_dir else keyfiles.supervisor_keys_dir(configured)
    try:
        mine = keyfiles.find_user_key()
        if mine is None:
            mine = keyfiles.new("user", name or current_user(), role="admin")
        sv = keyfiles.make_supervisor_keys(directory, owner=mine)
        path = keyfiles.user_key_path()
        if not path.exists() or not mine.supervisor:
            keyfiles.write(path, keyfiles.Key(mine.kind, mine.name, mine.public, mine.secret,
                                              sv.public, mine.role or "admin"),
                           overwrite=path.exists())
        _remember(settings.address, sv.public)
    except keyfiles.KeyFileError as exc:
        _fail(exc)
    click.echo(f"supervisor key: {directory / 'supervisor.key'} ({sv.fingerprint})")
    click.echo(f"its public half, for workers and users: {directory / 'supervisor.pub'}")
    click.echo(f"your key ({mine.name}, admin): {keyfiles.user_key_path()} ({mine.fingerprint})")
    click.echo("Restart the supervisor: from then on it takes only keys it knows.")


def _issue(settings: Settings, kind: str, name: str, role: str, out: str | None) -> None:
    path = Path(out) if out else Path(f"{name}.key")
    if path.exists():
        raise click.UsageError(f"{path} already exists; give another --out")
    key = keyfiles.new(kind, name, role=role if kind == "user" else "")
    row = settings.client().add_key(kind, name, key.public, role)
    try:
        keyfiles.write(path, keyfiles.Key(kind, row["name"], key.public, key.secret,
                                          row["supervisor"], row["role"]))
    except keyfiles.KeyFileError as exc:
        _fail(exc)
    click.echo(f"issued a {kind} key for {row['name']}"
               f"{' (' + row['role'] + ')' if row['role'] else ''}: {path} "
               f"({row['fingerprint']})")
    if kind == "user":
        click.echo(f"Give {path} to {name} privately; they run: cuefarm keys use {path.name}")
    else:
        click.echo(f"Copy {path} to {name} (mode 600) and start rqd with --key {path.name}")


@keys.command("add-user")
@click.argument("name")
@click.option("--role", type=click.Choice(["artist", "wrangler", "admin"]), default="artist",
              show_default=True)
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Key file (default NAME.key).")
@pass_settings
def add_user(settings: Settings, name: str, role: str, out: str | None) -> None:
    """Issue user NAME a key (admins)."""
    _issue(settings, "user", name, role, out)


@keys.command("add-worker")
@click.argument("host")
@click.option("-o", "--out", type=click.Path(dir_okay=False), help="Key file (default HOST.key).")
@pass_settings
def add_worker(settings: Settings, host: str, out: str | None) -> None:
    """Issue worker HOST a key (admins).  Workers may also make their own: they wait as
    pending until `cuefarm hosts admit HOST`."""
    _issue(settings, "worker", host, "", out)


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Revoked keys too.")
@json_option
@pass_settings
def list_keys(settings: Settings, include_revoked: bool, as_json: bool) -> None:
    """The farm's keys (admins)."""
    rows = settings.client().keys(include_revoked)
    if as_json:
        return print_json(rows)

    def when(t):
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"
    print_table(["FINGERPRINT", "KIND", "NAME", "ROLE", "ISSUED", "BY", "REVOKED"],
                [[r["fingerprint"], r["kind"], r["name"], r["role"] or "-", when(r["created_at"]),
                  r["created_by"] or "-", when(r["revoked_at"])] for r in rows])


@keys.command("revoke")
@click.argument("key")
@pass_settings
def revoke(settings: Settings, key: str) -> None:
    """Revoke KEY (a fingerprint, or a user or host name): refused at once, connections
    already open included (admins)."""
    for r in settings.client().revoke_key(key):
        click.echo(f"revoked the {r['kind']} key of {r['name']} ({r['fingerprint']})")


@keys.command("use")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@pass_settings
def use(settings: Settings, file: str) -> None:
    """Install FILE, a key an admin issued you, as your key (and note its supervisor's key
    for the supervisor address in use)."""
    try:
        key = keyfiles.read(file)
        if key.kind != "user":
            raise keyfiles.KeyFileError(f"{file} is a {key.kind} key, not a user's")
        dest = keyfiles.user_key_path()
        if dest.exists() and keyfiles.read(dest).public != key.public:
            backup = dest.with_name(dest.name + f".{int(time.time())}.old")
            shutil.move(dest, backup)
            click.echo(f"your previous key was moved to {backup}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        keyfiles.write(dest, key, overwrite=True)
        if key.supervisor:
            _remember(settings.address, key.supervisor)
    except (keyfiles.KeyFileError, OSError) as exc:
        _fail(exc)
    click.echo(f"your key is now {dest}: {key.name} ({key.fingerprint})")


@keys.command("show")
@json_option
def show(as_json: bool) -> None:
    """Your key: where it is and its fingerprint (never the secret)."""
    try:
        key = keyfiles.find_user_key()
    except keyfiles.KeyFileError as exc:
        _fail(exc)
    path = keyfiles.user_key_path()
    if key is None:
        if as_json:
            return print_json({"path": str(path), "key": None})
        click.echo(f"no key at {path}: this client connects without one (a farm without keys)")
        return
    info = {"path": str(path), "name": key.name, "role": key.role,
            "fingerprint": key.fingerprint, "mode": oct(os.stat(path).st_mode & 0o777)}
    if as_json:
        return print_json(info)
    click.echo(f"{key.name} ({key.role or 'role set by the supervisor'}): {key.fingerprint}, "
               f"{path}")
