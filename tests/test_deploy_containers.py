"""Container images and the compose file (packaging/container).

This machine runs no container daemon, so these tests check what can be checked without one:
Compose itself reads the compose file, which must agree with the Containerfiles and with the
programs' real settings; and each image's own commands (its ENV, ENTRYPOINT and HEALTHCHECK, read from the
Containerfile) run from the wheel installed in a fresh virtual environment, as in the image:
a supervisor on PostgreSQL (as compose runs it) and on SQLite (the image's default), two workers
that the supervisor dispatches a job to, healthchecks that fail before and pass after.
"""

from __future__ import annotations

import dataclasses
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
from tests.farm import free_port_block, wait_until
from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = ROOT / "packaging" / "container"
COMPOSE = CONTAINER / "compose.yaml"
HEALTHCHECK_IN_IMAGE = "/usr/local/lib/cuefarm/healthcheck.py"

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


def compose() -> dict:
    """The compose file as Compose itself reads it (variables substituted, anchors merged),
    with CUEFARM_DB_PASSWORD set."""
    env = {**os.environ, "CUEFARM_DB_PASSWORD": DB_PASSWORD}
    done = subprocess.run([*compose_tool(), "-f", str(COMPOSE), "config"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


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
    assert image.entrypoint == ["python", "-m", "supervisor"]


def test_rqd_image_listens_on_nothing_and_reaps_orphans():
    image = read_containerfile("Containerfile.rqd")
    assert image.expose == set()
    assert image.entrypoint == ["tini", "--", "cuefarm", "rqd"]


def test_compose_wires_postgres_one_supervisor_and_two_workers():
    doc = compose()
    services = doc["services"]
    assert set(services) == {"postgres", "supervisor", "worker1", "worker2"}
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
    rqd_image = read_containerfile("Containerfile.rqd")
    names = set()
    for name in ("worker1", "worker2"):
        worker = services[name]
        assert worker["build"]["dockerfile"] == "packaging/container/Containerfile.rqd"
        assert worker["depends_on"]["supervisor"]["condition"] == "service_healthy"
        cfg = config.load(config.RqdConfig, "rqd", files=[], environ=worker["environment"])
        assert [config.parse_address(a) for a in cfg.supervisors] == [("supervisor", port)]
        assert cfg.slots > 0
        names.add(worker["hostname"])
        # each worker keeps its state (unacknowledged completions) on a volume of its own
        [volume] = worker["volumes"]
        target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
        assert target == rqd_image.env["CUEFARM_DATA_DIR"]
    assert len(names) == 2
    for service in services.values():
        env = service.get("environment", {})
        unknown = {k for k in env if k.startswith("CUEFARM_")} - setting_names() - OTHER_VARIABLES
        assert not unknown


# -- the images' commands, run from the wheel -----------------------------------------------------


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory):
    """A fresh venv with the wheel built from this tree, installed as the images install it."""
    base = tmp_path_factory.mktemp("image")
    wheel = build_wheel(base / "wheel")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True)
    subprocess.run([str(base / "venv" / "bin" / "python"), "-m", "pip", "install", "-q",
                    f"{wheel}[postgres]"], check=True)
    return base / "venv" / "bin"


class ImageRun:
    """Runs a Containerfile's commands with the venv's programs in place of the image's."""

    def __init__(self, name: str, bindir: Path, tmp: Path, environ: dict[str, str]):
        self.image = read_containerfile(name)
        self.bindir = bindir
        self.tmp = tmp
        self.cwd = tmp / "cwd"           # not the source tree: nothing imported from it
        self.cwd.mkdir(parents=True, exist_ok=True)
        # the image's environment, then the test's (compose's, with addresses made local)
        self.env = {"PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp),
                    "CUEFARM_CONFIG": str(tmp / "none.toml"), **self.image.env, **environ}
        self.proc: subprocess.Popen | None = None

    def argv(self, words: list[str]) -> list[str]:
        out = []
        for w in words:
            if w == HEALTHCHECK_IN_IMAGE:
                w = str(CONTAINER / "healthcheck.py")
            elif w in ("python", "cuefarm"):
                w = str(self.bindir / w)
            elif w == "tini":
                w = shutil.which("tini") or pytest.fail("tini is missing (.ci/run installs it)")
            out.append(w)
        return out

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(self.argv(self.image.entrypoint + self.image.cmd),
                                     cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        return self.proc

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


def run_farm(bindir: Path, tmp: Path, supervisor_env: dict[str, str]) -> None:
    """Start the supervisor image's command with `supervisor_env` and two workers with
    compose's worker settings, check health, run a job on them, stop everything."""
    port = free_port_block(4)
    services = compose()["services"]
    # As compose runs it: a trial without keys, which the supervisor must be told.
    insecure = services["supervisor"]["environment"]["CUEFARM_SUPERVISOR_INSECURE"]
    sup = ImageRun("Containerfile.supervisor", bindir, tmp / "sup",
                   {**supervisor_env, "CUEFARM_SUPERVISOR_PORT": str(port),
                    "CUEFARM_SUPERVISOR_INSECURE": insecure})
    assert not sup.healthy()                    # nothing answers yet: the check says so
    sup.start()
    workers = []
    try:
        wait_until(sup.up, 120, 0.5, "the supervisor's healthcheck to pass")
        with urllib.request.urlopen(f"http://127.0.0.1:{port + 3}/metrics", timeout=10) as r:
            assert b"cuefarm_" in r.read()      # P+3: Prometheus metrics
        for name in ("worker1", "worker2"):
            env = dict(services[name]["environment"])
            env["CUEFARM_RQD_SUPERVISORS"] = env["CUEFARM_RQD_SUPERVISORS"].replace(
                "supervisor:9770", f"127.0.0.1:{port}")
            # in compose the name is the container's host name
            env["CUEFARM_RQD_NAME"] = services[name]["hostname"]
            env["CUEFARM_DATA_DIR"] = str(tmp / name / "data")
            if os.geteuid() == 0:
                # The image runs rqd as a non-root user, whose frames run as that user.  Here
                # rqd runs as root, so frames would run as the submitting user (root, too):
                # allow uid 0 for that.
                env["CUEFARM_RQD_MIN_UID"] = "0"
            w = ImageRun("Containerfile.rqd", bindir, tmp / name, env)
            assert not w.healthy()              # not registered yet
            w.start()
            workers.append(w)
        for w in workers:
            wait_until(w.up, 120, 0.5, "a worker's healthcheck to pass")
        with Client(f"127.0.0.1:{port}", timeout=30) as client:
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
    assert code == 0, sup.output()


@pytest.mark.postgres
@pytest.mark.timeout(600)
def test_supervisor_on_postgres_and_two_workers_as_compose_runs_them(image_venv, tmp_path,
                                                                     postgres_url):
    compose_db = compose()["services"]["supervisor"]["environment"]["CUEFARM_SUPERVISOR_DB"]
    local = make_url(postgres_url)
    url = make_url(compose_db).set(
        host=local.host, port=local.port, username=local.username, password=None,
        database=local.database)
    run_farm(image_venv, tmp_path,
             {"CUEFARM_SUPERVISOR_DB": url.render_as_string(hide_password=False),
              "CUEFARM_DATA_DIR": str(tmp_path / "sup" / "data")})


@pytest.mark.timeout(600)
def test_supervisor_image_default_keeps_sqlite_in_its_data_volume(image_venv, tmp_path):
    data = tmp_path / "sup" / "data"
    run_farm(image_venv, tmp_path, {"CUEFARM_DATA_DIR": str(data)})
    assert (data / "cuefarm.db").is_file()
