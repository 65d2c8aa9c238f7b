"""`cuefarm submit` checks a job before sending it without expanding its ranges, and the
supervisor refuses one past its own frame limit: a clear error naming the field, nothing stored."""

from __future__ import annotations

import resource
import textwrap

from click.testing import CliRunner

from cuefarm.cli import cli
from tests.farm import running_farm


def test_a_range_over_the_supervisors_limit_is_refused_without_expanding(sqlite_url, tmp_path):
    limit = {"CUEFARM_SUPERVISOR_MAX_FRAMES_PER_JOB": "1000"}
    with running_farm(sqlite_url, tmp_path, limit) as farm:
        job = tmp_path / "job.yaml"
        args = ["--supervisor", farm.address, "--timeout", "15", "submit", str(job)]
        # Forty million frames would take gigabytes to expand; counting them takes nothing.
        # (Under the client's own sanity cap, so the supervisor is the one that refuses.)
        job.write_text(textwrap.dedent("""\
            name: huge
            layers:
              - {name: render, command: "x #FRAME#", range: "1-40000000"}
            """))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = CliRunner().invoke(cli, args)
        grew_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert result.exit_code != 0
        assert "more than the maximum of 1,000 frames" in result.output, result.output
        assert "layers[0].range" in result.output, result.output
        assert grew_kib < 200_000, f"the range was expanded ({grew_kib} KiB more)"
        # Just over the supervisor's limit is refused too, and nothing was stored by either.
        job.write_text(job.read_text().replace("1-40000000", "1-1001"))
        result = CliRunner().invoke(cli, args)
        assert result.exit_code != 0 and "more than the maximum of 1,000 frames" in result.output
        assert farm.client().jobs() == []
        job.write_text(job.read_text().replace("1-1001", "1-1000"))
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        assert [j["name"] for j in farm.client().jobs()] == ["huge"]
