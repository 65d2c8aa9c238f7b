"""Container images and the compose file (packaging/container).

This machine runs no container daemon, so these tests check what can be checked without one:
Compose itself reads the compose file, which must agree with the Containerfiles and with the
programs' real settings; and each image's own commands (its ENV, ENTRYPOINT and HEALTHCHECK, read from the
Containerfile) run from the wheel installed in a fresh virtual environment, as in the image:
the farm as compose runs it (a supervisor on PostgreSQL that makes its keys on first start, the
one-shot service that issues the workers theirs, two workers admitted with them, each volume a
directory) and the insecure trial compose.insecure.yaml asks for (on SQLite, the image's
default); the supervisor dispatches a job to the workers; healthchecks fail before and pass
after.
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import make_url

from cuefarm import Client, config
from cuefarm import keys as keyfiles
from tests.farm import free_port_block, wait_until
from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = ROOT / "packaging" / "container"
COMPOSE = CONTAINER / "compose.yaml"
INSECURE = CONTAINER / "compose.insecure.yaml"
IN_IMAGE = "/usr/local/lib/cuefarm/"          # where the images keep the scripts copied in
HEALTHCHECK_IN_IMAGE = IN_IMAGE + "healthcheck.py"
FARMKEYS_IN_IMAGE = IN_IMAGE + "farmkeys.py"

# Environment variables the programs read besides CUEFARM_<SECTION>_<KEY> (cuefarm/config.py,
# cuefarm/client.py) and the ones Python itself reads.
OTHER_VARIABLES = {"CUEFARM_DATA_DIR", "CUEFARM_CONFIG", "CUEFARM_SUPERVISOR", "CUEFARM_TIMEOUT",
                   "PYTHONUNBUFFERED"}


@dataclasses.dataclass
class Image:
    """What a Containerfile's final stage declares."""

    env: dict[str, str]
    expose: set[int]
    user: str
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]
    copies: list[str]


def read_containerfile(name: str) -> Image:
    """Parse the final stage of packaging/container/NAME (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", (CONTAINER / name).read_text())
    stages = re.split(r"(?m)^FROM ", text)
    lines = [ln.strip() for ln in stages[-1].splitlines()[1:]
             if ln.strip() and not ln.strip().startswith("#")]
    image = Image({}, set(), "root", [], [], [], [])
    for line in lines:
        word, _, rest = line.partition(" ")
        if word == "ENV":
            for item in shlex.split(rest):
                key, _, value = item.partition("=")
                image.env[key] = value
        elif word == "EXPOSE":
            image.expose |= {int(p) for p in rest.split()}
        elif word == "USER":
            image.user = rest.strip()
        elif word == "ENTRYPOINT":
            image.entrypoint = json.loads(rest)
        elif word == "CMD":
            image.cmd = json.loads(rest)
        elif word == "HEALTHCHECK":
            image.healthcheck = json.loads(rest.split(" CMD ", 1)[1])
        elif word == "COPY":
            image.copies.append(rest)
    return image


def compose_tool() -> list[str]:
    """A Compose implementation: docker compose (v2) or docker-compose; neither needs a daemon
    to read a file (.ci/run installs Debian's docker-compose when neither is here)."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"],
                                                 capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no docker compose or docker-compose (.ci/run installs docker-compose)")


DB_PASSWORD = "s3cret-for-test"


def compose(*overrides: Path) -> dict:
    """The compose file (with `overrides` on top, as `-f` adds them) as Compose itself reads
    it (variables substituted, anchors merged), with CUEFARM_DB_PASSWORD set."""
    env = {**os.environ, "CUEFARM_DB_PASSWORD": DB_PASSWORD}
    files = [arg for f in (COMPOSE, *overrides) for arg in ("-f", str(f))]
    done = subprocess.run([*compose_tool(), *files, "config"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(volume, path in the container, read-only) of each of a service's volumes, in either
    form Compose writes them (docker-compose: "name:/path:ro"; docker compose: mappings)."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((v["source"], v["target"], bool(v.get("read_only"))))
        else:
            source, target, *mode = v.split(":")
            out.append((source, target, bool(mode) and "ro" in mode[0].split(",")))
    return out


def setting_names() -> set[str]:
    """Every CUEFARM_<SECTION>_<KEY> variable the programs read."""
    names = set()
    for cls, section in ((config.SupervisorConfig, "supervisor"), (config.RqdConfig, "rqd")):
        names |= {f"CUEFARM_{section.upper()}_{f.name.upper()}" for f in dataclasses.fields(cls)}
    return names


# -- the files agree with the programs ------------------------------------------------------------


@pytest.mark.parametrize("name", ["Containerfile.supervisor", "Containerfile.rqd"])
def test_images_run_installed_programs_as_a_user_with_known_settings(name):
    image = read_containerfile(name)
    assert image.user not in ("", "root", "0")
    assert set(image.env) <= setting_names() | OTHER_VARIABLES, set(image.env) - setting_names()
    for key, value in image.env.items():     # each value is one the program accepts
        if key.startswith("CUEFARM_SUPERVISOR_"):
            config.load(config.SupervisorConfig, "supervisor", files=[], environ={key: value})
        elif key.startswith("CUEFARM_RQD_"):
            config.load(config.RqdConfig, "rqd", files=[], environ={key: value})
    assert image.healthcheck[:2] == ["python", HEALTHCHECK_IN_IMAGE]
    assert f"packaging/container/healthcheck.py {HEALTHCHECK_IN_IMAGE}" in image.copies
    for copy in image.copies:                 # every path copied from the context exists
        if not copy.startswith("--from"):
            *sources, _dest = copy.split()
            assert all((ROOT / s).exists() for s in sources), copy


def test_supervisor_image_exposes_its_four_ports():
    image = read_containerfile("Containerfile.supervisor")
    port = int(image.env.get("CUEFARM_SUPERVISOR_PORT", config.DEFAULT_PORT))
    # P client API, P+1 workers, P+2 events, P+3 Prometheus (metrics_port -1 means P+3).
    assert config.SupervisorConfig().metrics_port == -1
    assert image.expose == {port, port + 1, port + 2, port + 3}
    assert image.env["CUEFARM_SUPERVISOR_BIND"] == "*"
    # keys made on first start, then the supervisor itself (farmkeys.py execs python -m supervisor)
    assert image.entrypoint == ["python", FARMKEYS_IN_IMAGE, "supervisor"]
    assert f"packaging/container/farmkeys.py {FARMKEYS_IN_IMAGE}" in image.copies


def test_rqd_image_listens_on_nothing_and_reaps_orphans():
    image = read_containerfile("Containerfile.rqd")
    assert image.expose == set()
    assert image.entrypoint == ["tini", "--", "cuefarm", "rqd"]


def test_compose_wires_postgres_one_supervisor_and_two_workers():
    doc = compose()
    services = doc["services"]
    assert set(services) == {"postgres", "supervisor", "worker-keys", "worker1", "worker2"}
    sup = services["supervisor"]
    image = read_containerfile("Containerfile.supervisor")
    port = int(image.env["CUEFARM_SUPERVISOR_PORT"])
    assert sup["build"]["dockerfile"] == "packaging/container/Containerfile.supervisor"
    assert Path(sup["build"]["context"]) == ROOT
    published = {(int(p["published"]), int(p["target"])) for p in sup["ports"]}
    assert published == {(p, p) for p in image.expose}
    # The supervisor's database is the postgres service, with its user, password and database.
    pg = services["postgres"]["environment"]
    url = make_url(sup["environment"]["CUEFARM_SUPERVISOR_DB"])
    assert (url.get_backend_name(), url.host, url.username, url.password, url.database) == \
        ("postgresql", "postgres", pg["POSTGRES_USER"], DB_PASSWORD, pg["POSTGRES_DB"])
    assert pg["POSTGRES_PASSWORD"] == DB_PASSWORD
    assert sup["depends_on"]["postgres"]["condition"] == "service_healthy"
    # With keys: nothing tells the supervisor to run without them, and its keys (in its data
    # dir) are on a volume of its own.
    sup_cfg = config.load(config.SupervisorConfig, "supervisor", files=[],
                          environ={**image.env, **sup["environment"]})
    assert not sup_cfg.insecure
    [(sup_data, target, read_only)] = mounts(sup)
    assert target == image.env["CUEFARM_DATA_DIR"] and not read_only
    # worker-keys: the supervisor's image, its data volume (read-only) and the farm-keys
    # volume, where it issues a key to each of compose's workers, by their host names.
    issuer = services["worker-keys"]
    assert issuer["image"] == sup["image"]
    assert issuer["entrypoint"][:3] == ["python", FARMKEYS_IN_IMAGE, "workers"]
    keys_dir = issuer["entrypoint"][issuer["entrypoint"].index("--dir") + 1]
    issuer_mounts = {target: (volume, ro) for volume, target, ro in mounts(issuer)}
    assert issuer_mounts[image.env["CUEFARM_DATA_DIR"]] == (sup_data, True)
    farm_keys, ro = issuer_mounts[keys_dir]
    assert not ro
    assert config.parse_address(issuer["environment"]["CUEFARM_SUPERVISOR"]) == \
        ("supervisor", port)
    assert issuer["depends_on"]["supervisor"]["condition"] == "service_healthy"
    assert sorted(issuer["command"]) == ["worker1", "worker2"]
    rqd_image = read_containerfile("Containerfile.rqd")
    names = set()
    for name in ("worker1", "worker2"):
        worker = services[name]
        assert worker["build"]["dockerfile"] == "packaging/container/Containerfile.rqd"
        assert worker["depends_on"]["supervisor"]["condition"] == "service_healthy"
        assert worker["depends_on"]["worker-keys"]["condition"] == \
            "service_completed_successfully"
        cfg = config.load(config.RqdConfig, "rqd", files=[], environ=worker["environment"])
        assert [config.parse_address(a) for a in cfg.supervisors] == [("supervisor", port)]
        assert cfg.slots > 0
        names.add(worker["hostname"])
        worker_mounts = {target: (volume, ro) for volume, target, ro in mounts(worker)}
        # each worker keeps its state (unacknowledged completions) on a volume of its own
        data, ro = worker_mounts[rqd_image.env["CUEFARM_DATA_DIR"]]
        assert data not in (sup_data, farm_keys) and not ro
        # and reads its key and the supervisor's from farm-keys, which it cannot change
        assert worker_mounts[keys_dir] == (farm_keys, True)
        assert cfg.supervisor_key == f"{keys_dir}/supervisor.pub"
        assert cfg.key == f"{keys_dir}/{worker['hostname']}.key"
    assert names == set(issuer["command"])
    datas = {v for n in ("worker1", "worker2") for v, t, _ in mounts(services[n])
             if t == rqd_image.env["CUEFARM_DATA_DIR"]}
    assert len(datas) == 2
    for service in services.values():
        env = service.get("environment", {})
        unknown = {k for k in env if k.startswith("CUEFARM_")} - setting_names() - OTHER_VARIABLES
        assert not unknown


def test_the_insecure_trial_is_an_override_that_says_so():
    assert "INSECURE" in INSECURE.read_text().splitlines()[0]
    services = compose(INSECURE)["services"]
    image = read_containerfile("Containerfile.supervisor")
    cfg = config.load(config.SupervisorConfig, "supervisor", files=[],
                      environ={**image.env, **services["supervisor"]["environment"]})
    assert cfg.insecure
    for name in ("worker1", "worker2"):
        cfg = config.load(config.RqdConfig, "rqd", files=[],
                          environ=services[name]["environment"])
        assert (cfg.key, cfg.supervisor_key) == ("", "")


def load_script(name: str):
    """A script of packaging/container, imported as a module."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), CONTAINER / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_first_start_makes_keys_once_and_keeps_them(tmp_path):
    farmkeys = load_script("farmkeys.py")
    keys_dir = tmp_path / "keys"
    (tmp_path / "keys.new").mkdir()             # left by a start cut short: made again
    (tmp_path / "keys.new" / "supervisor.key").write_text("half made")
    sv = farmkeys.make_supervisor_keys(keys_dir)
    admin = keyfiles.read(keys_dir / "admin.key")
    assert (admin.kind, admin.name, admin.role, admin.supervisor) == \
        ("user", "admin", "admin", sv.public)
    assert keyfiles.read(keys_dir / "owner.pub", need_secret=False).public == admin.public
    assert keyfiles.read(keys_dir / "supervisor.key").public == sv.public
    assert not (tmp_path / "keys.new").exists()
    before = {p.name: p.read_bytes() for p in keys_dir.iterdir()}
    assert farmkeys.make_supervisor_keys(keys_dir) is None      # never made twice
    assert {p.name: p.read_bytes() for p in keys_dir.iterdir()} == before


def test_worker_keys_are_issued_only_for_host_names(tmp_path, capsys):
    farmkeys = load_script("farmkeys.py")
    for name in ("../escape", ".hidden", "a b", ""):
        assert farmkeys.workers(["--dir", str(tmp_path / "out"), "worker1", name]) == 1
        assert f"worker name {name!r} is not a host name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# -- the images' commands, run from the wheel -----------------------------------------------------


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    """A fresh venv with the wheel built from this tree, installed as the images install it
    (without byte code: the programs write their own as they import)."""
    base = tmp_path_factory.mktemp("image")
    wheel = build_wheel(base / "wheel")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True)
    subprocess.run([str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                    "--no-compile", f"{wheel}[postgres]"], check=True)
    return base / "venv" / "bin"


class ImageRun:
    """Runs a Containerfile's commands with the venv's programs in place of the image's: as
    compose's `service` runs them when one is given (its entrypoint and command, and its
    volumes: each a directory of `volumes`, put wherever the service mounts it, in the
    environment and the arguments)."""

    def __init__(self, name: str, bindir: Path, tmp: Path, environ: dict[str, str],
                 service: dict | None = None, volumes: Path | None = None):
        self.image = read_containerfile(name)
        self.bindir = bindir
        self.tmp = tmp
        self.cwd = tmp / "cwd"           # not the source tree: nothing imported from it
        self.cwd.mkdir(parents=True, exist_ok=True)
        service = service or {}
        self.paths = {}                  # a path in the container -> the directory used here
        for volume, target, _ in mounts(service):
            self.paths[target] = volumes / volume
            self.paths[target].mkdir(parents=True, exist_ok=True)
        if "entrypoint" in service:      # as Compose: a new entrypoint drops the image's CMD
            self.command = service["entrypoint"] + service.get("command", [])
        else:
            self.command = self.image.entrypoint + service.get("command", self.image.cmd)
        # the image's environment, then the service's, then the test's
        env = {**self.image.env, **service.get("environment", {}), **environ}
        self.env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp),
                    "CUEFARM_CONFIG": str(tmp / "none.toml"),
                    **{k: self.local(v) for k, v in env.items()}}
        self.proc: subprocess.Popen | None = None

    def local(self, word: str) -> str:
        """`word` with a path the service mounts a volume on made that volume's directory."""
        for target in sorted(self.paths, key=len, reverse=True):
            if word == target or word.startswith(target + "/"):
                return str(self.paths[target]) + word[len(target):]
        return word

    def argv(self, words: list[str]) -> list[str]:
        out = []
        for w in words:
            if w.startswith(IN_IMAGE):
                w = str(CONTAINER / w[len(IN_IMAGE):])
            elif w in ("python", "cuefarm"):
                w = str(self.bindir / w)
            elif w == "tini":
                w = shutil.which("tini") or pytest.fail("tini is missing (.ci/run installs it)")
            out.append(self.local(w))
        return out

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(self.argv(self.command), cwd=self.cwd, env=self.env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return self.proc

    def run(self) -> subprocess.CompletedProcess:
        """Run a one-shot service to its end."""
        return subprocess.run(self.argv(self.command), cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def healthy(self) -> bool:
        done = subprocess.run(self.argv(self.image.healthcheck), cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode in (0, 1), done.stderr
        return done.returncode == 0

    def up(self) -> bool:
        """Healthy, failing the test at once if the program has exited."""
        if self.proc.poll() is not None:
            pytest.fail(f"exited with {self.proc.returncode}:\n{self.output()}")
        return self.healthy()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc.stdout else ""


def host_cli(bindir: Path, home: Path, port: int, *args: str) -> subprocess.CompletedProcess:
    """`cuefarm ARGS` as the person on the host machine runs it: in `home`, with nothing of
    this test's configuration, talking to the supervisor's published port."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home),
           "CUEFARM_CONFIG": str(home / "none.toml"), "CUEFARM_SUPERVISOR": f"127.0.0.1:{port}"}
    return subprocess.run([str(bindir / "cuefarm"), "--timeout", "20", *args], cwd=home,
                          env=env, capture_output=True, text=True, timeout=120)


def run_farm(bindir: Path, tmp: Path, services: dict, supervisor_env: dict[str, str],
             keys: bool) -> tuple[Path, str]:
    """Run compose's `services` from the images' commands: the supervisor (with
    `supervisor_env` on top of compose's), worker-keys, then two workers; check health, that
    the farm takes only keys it knows when `keys`, run a job on the workers, stop everything.
    Returns the directory standing for the supervisor's data volume, and what it printed."""
    port = free_port_block(4)
    volumes = tmp / "volumes"
    local = {"CUEFARM_SUPERVISOR_PORT": str(port)}
    sup = ImageRun("Containerfile.supervisor", bindir, tmp / "sup",
                   {**supervisor_env, **local}, services["supervisor"], volumes)
    sup_data = Path(sup.env["CUEFARM_DATA_DIR"])
    assert sup_data.is_relative_to(volumes)     # the data dir is on the supervisor's volume
    assert not sup.healthy()                    # nothing answers yet: the check says so
    sup.start()
    workers = []
    try:
        wait_until(sup.up, 120, 0.5, "the supervisor's healthcheck to pass")
        with urllib.request.urlopen(f"http://127.0.0.1:{port + 3}/metrics", timeout=10) as r:
            assert b"cuefarm_" in r.read()      # P+3: Prometheus metrics
        # worker-keys, once the supervisor is healthy (and again, as at the next `up`)
        issuer = ImageRun("Containerfile.supervisor", bindir, tmp / "worker-keys",
                          {"CUEFARM_SUPERVISOR": f"127.0.0.1:{port}", **local},
                          services["worker-keys"], volumes)
        first, again = issuer.run(), issuer.run()
        assert (first.returncode, again.returncode) == (0, 0), first.stderr + again.stderr
        farm_keys = Path(issuer.local(issuer.command[issuer.command.index("--dir") + 1]))
        if keys:
            assert (sup_data / "keys" / "supervisor.key").is_file()
            assert first.stderr.count(": issued ") == 2, first.stderr
            assert "issued" not in again.stderr and "has its key" in again.stderr
            modes = {p.name: p.stat().st_mode & 0o777 for p in farm_keys.iterdir()}
            assert modes == {"supervisor.pub": 0o644, "worker1.key": 0o600,
                             "worker2.key": 0o600}
        else:
            assert not (sup_data / "keys").exists()
            assert "no keys to issue" in first.stderr
        for name in ("worker1", "worker2"):
            env = {"CUEFARM_RQD_SUPERVISORS": f"127.0.0.1:{port}",
                   # in compose the name is the container's host name
                   "CUEFARM_RQD_NAME": services[name]["hostname"]}
            if os.geteuid() == 0:
                # The image runs rqd as a non-root user, whose frames run as that user.  Here
                # rqd runs as root, so frames would run as the submitting user (root, too):
                # allow uid 0 for that.
                env["CUEFARM_RQD_MIN_UID"] = "0"
            w = ImageRun("Containerfile.rqd", bindir, tmp / name, env, services[name], volumes)
            assert Path(w.env["CUEFARM_DATA_DIR"]).is_relative_to(volumes)
            assert not w.healthy()              # not registered yet
            w.start()
            workers.append(w)
        for w in workers:
            wait_until(w.up, 120, 0.5, "a worker's healthcheck to pass")
        if keys:
            # The person on the host: without a key, no answer; with the admin's key copied
            # out of the supervisor's volume as documented, the farm.
            denied = host_cli(bindir, tmp / "stranger", port, "hosts")
            assert denied.returncode != 0 and "keys" in denied.stderr, denied
            me = tmp / "host"
            me.mkdir()
            shutil.copy2(sup_data / "keys" / "admin.key", me)    # docker compose cp
            used = host_cli(bindir, me, port, "keys", "use", "admin.key")
            assert used.returncode == 0, used.stderr
            listed = host_cli(bindir, me, port, "hosts", "--json")
            assert listed.returncode == 0, listed.stderr
            hosts = {h["name"]: h["state"] for h in json.loads(listed.stdout)}
            assert hosts == {"worker1": "UP", "worker2": "UP"}   # admitted by their keys
            # A worker outside the project makes its own key and waits for an admin.
            outsider = ImageRun("Containerfile.rqd", bindir, tmp / "outsider", {
                "CUEFARM_RQD_SUPERVISORS": f"127.0.0.1:{port}", "CUEFARM_RQD_NAME": "outsider",
                "CUEFARM_RQD_SUPERVISOR_KEY": str(farm_keys / "supervisor.pub"),
                "CUEFARM_DATA_DIR": str(tmp / "outsider" / "data")})
            outsider.start()
            workers.append(outsider)

            def waiting() -> list[str]:
                done = host_cli(bindir, me, port, "hosts", "pending", "--json")
                assert done.returncode == 0, done.stderr
                return [r["name"] for r in json.loads(done.stdout) if r["state"] == "pending"]
            wait_until(lambda: waiting() == ["outsider"], 60, 0.5, "the outsider pending")
            assert not outsider.healthy()
            assert outsider.stop() == 0, outsider.output()
            workers.remove(outsider)
            # The admin issues a user a key (this test's OS user: rqd runs as root here, and
            # then runs frames as the job's user, who must exist on this machine).
            issued = host_cli(bindir, me, port, "keys", "add-user", getpass.getuser(),
                              "--role", "artist", "-o", "artist.key")
            assert issued.returncode == 0, issued.stderr
            client_key = me / "artist.key"
            supervisor_key = keyfiles.read(farm_keys / "supervisor.pub", need_secret=False).public
        else:
            client_key = supervisor_key = None
        with Client(f"127.0.0.1:{port}", timeout=30, key=client_key,
                    supervisor_key=supervisor_key) as client:
            [job] = client.submit([{"name": "deploy", "layers": [
                {"name": "r", "command": "echo frame #FRAME#", "range": "1-8"}]}])
            done = client.wait(job, timeout=120)
            assert (done["succeeded"], done["dead"]) == (8, 0)
            ran_on = {f["host"] for f in client.frames(job)}
            assert ran_on <= {"worker1", "worker2"} and ran_on
        for w in workers:
            assert w.stop() == 0, w.output()
        workers.clear()
    finally:
        for w in workers:
            w.stop()
        code = sup.stop()
    output = sup.output()
    assert code == 0, output
    return sup_data, output


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_the_compose_farm_runs_with_keys_on_postgres(image_venv, tmp_path, postgres_url):
    services = compose()["services"]
    compose_db = services["supervisor"]["environment"]["CUEFARM_SUPERVISOR_DB"]
    local = make_url(postgres_url)
    url = make_url(compose_db).set(
        host=local.host, port=local.port, username=local.username, password=None,
        database=local.database)
    sup_data, output = run_farm(
        image_venv, tmp_path, services,
        {"CUEFARM_SUPERVISOR_DB": url.render_as_string(hide_password=False)}, keys=True)
    assert "made the supervisor's keys" in output and "INSECURE" not in output
    # made on first start: the supervisor's key, its public half, and the admin's key, the
    # one recorded as the owner's; all private but the public halves
    made = {p.name: p.stat().st_mode & 0o777 for p in (sup_data / "keys").iterdir()}
    assert made == {"supervisor.key": 0o600, "supervisor.pub": 0o644, "owner.pub": 0o644,
                    "admin.key": 0o600}


@pytest.mark.timeout(600)
def test_the_insecure_trial_on_the_image_default_sqlite(image_venv, tmp_path):
    services = compose(INSECURE)["services"]
    del services["supervisor"]["environment"]["CUEFARM_SUPERVISOR_DB"]
    sup_data, output = run_farm(image_venv, tmp_path, services, {}, keys=False)
    assert (sup_data / "cuefarm.db").is_file()
    # said loudly, by the image's entry point and by the supervisor
    assert "INSECURE: told to run without keys" in output
    assert "INSECURE: listening on * without keys" in output
