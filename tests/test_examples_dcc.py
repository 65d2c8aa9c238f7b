"""The Blender and ffmpeg example jobs (resources/examples/) run end to end: submitted with
`cuefarm submit`, run by real rqd workers for a real supervisor, checked by what they wrote
(PNG sizes, and the movie's codec, size and frame count as ffprobe reads them).

They need `blender` and `ffmpeg` on this machine: skipped without them, except under CI=true,
where they fail (.ci/run installs them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.farm import running_farm

EXAMPLES = Path(__file__).resolve().parents[1] / "resources" / "examples"
EXAMPLE_OUT = "/tmp/cuefarm-examples"       # where the example files write
WAIT = 600.0        # generous: the machine may be loaded; a pass takes well under a minute


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (Debian: apt install {' '.join(missing)})"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: the DCC examples must run")
        pytest.skip(reason)


def probe(path: Path) -> dict:
    """The first video stream of `path` as ffprobe reads it, with its frames counted."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_frames", "-show_entries",
         "stream=codec_name,width,height,nb_read_frames", "-of", "json", str(path)],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"ffprobe {path}: {out.stderr}"
    [stream] = json.loads(out.stdout)["streams"]
    return stream


def size(path: Path) -> tuple[str, int, int]:
    s = probe(path)
    return s["codec_name"], s["width"], s["height"]


@pytest.fixture
def dcc_farm(sqlite_url, tmp_path):
    """A supervisor and two local rqd workers with one slot each."""
    with running_farm(sqlite_url, tmp_path) as farm:
        farm.start_rqd("dcc1", 1)
        farm.start_rqd("dcc2", 1)
        farm.wait_hosts_up(["dcc1", "dcc2"])
        yield farm


def run_example(farm, name: str, out: Path) -> tuple[int, dict]:
    """Submit the example `name` with `out` in place of EXAMPLE_OUT, wait for it, and return
    (job id, finished job row); fail with the logs of frames that died if any did."""
    text = (EXAMPLES / name).read_text()
    assert EXAMPLE_OUT in text
    out.mkdir(parents=True, exist_ok=True)
    job_file = out / name
    job_file.write_text(text.replace(EXAMPLE_OUT, str(out)))
    result = farm.cli("submit", str(job_file), "--json")
    assert result.exit_code == 0, result.output
    [job_id] = json.loads(result.stdout)
    client = farm.client()
    job = client.wait(job_id, timeout=WAIT)
    if job["dead"] or job["succeeded"] != job["frames_total"]:
        dead = client.frames(job_id, states=["DEAD"])
        logs = [farm.cli("log", str(job_id), "--layer", f["layer"], "--frame",
                         str(f["number"])).output for f in dead[:3]]
        pytest.fail(f"{name}: {job['dead']} dead frame(s):\n" + "\n".join(logs))
    return job_id, job


def test_blender_example_renders_thumbnails_and_a_movie(dcc_farm, tmp_path):
    need("blender", "ffmpeg", "ffprobe")
    job_id, job = run_example(dcc_farm, "blender.yaml", tmp_path)
    out = tmp_path / "blender"
    assert job["frames_total"] == 20            # tasks: 1 + 8 + 2 chunks of 4 + 8 + 1
    assert (out / "scene.blend").stat().st_size > 0
    for n in range(1, 9):
        assert size(out / "frames" / f"frame_{n:04d}.png") == ("png", 320, 180)
        assert size(out / "preview" / f"preview_{n:04d}.png") == ("png", 160, 90)
        assert size(out / "thumbs" / f"thumb_{n:04d}.jpg") == ("mjpeg", 160, 90)
    movie = probe(out / "turntable.mp4")
    assert (movie["codec_name"], movie["width"], movie["height"]) == ("h264", 320, 180)
    assert int(movie["nb_read_frames"]) == 8
    # Every render ended at 100% (what the frames view showed climbing while they ran).
    frames = dcc_farm.client().frames(job_id, "render")
    assert [f["progress"] for f in frames] == [100] * 8


def test_ffmpeg_example_makes_graded_frames_and_a_movie(dcc_farm, tmp_path):
    need("ffmpeg", "ffprobe")
    job_id, job = run_example(dcc_farm, "ffmpeg.yaml", tmp_path)
    out = tmp_path / "ffmpeg"
    layers = {layer["name"]: layer for layer in dcc_farm.client().layers(job_id)}
    assert [layers[n]["frames_total"] for n in ("frames", "grade", "encode")] == [4, 24, 1]
    for n in range(1, 25):
        assert size(out / "frames" / f"card_{n:04d}.png") == ("png", 320, 180)
        assert size(out / "graded" / f"card_{n:04d}.png") == ("png", 320, 180)
    movie = probe(out / "testcard.mp4")
    assert (movie["codec_name"], movie["width"], movie["height"]) == ("h264", 320, 180)
    assert int(movie["nb_read_frames"]) == 24
