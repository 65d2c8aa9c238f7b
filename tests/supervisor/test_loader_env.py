"""Variables that change how programs load are refused in a job's env unless allowed."""

from __future__ import annotations

import pytest

from cuefarm import CueFarmError, loaderenv
from tests.farm import running_farm


def job(project: str, env: dict[str, str]) -> dict:
    return {"name": "env", "project": project, "layers": [
        {"name": "r", "command": ["true"], "range": "1", "env": env}]}


def test_loader_variables_are_refused_at_submit_unless_allowed(sqlite_url, tmp_path):
    allow = {"CUEFARM_SUPERVISOR_LOADER_ENV_ALLOW": "lighting:PYTHONPATH, OCIO_*"}
    with running_farm(sqlite_url, tmp_path, allow) as farm:
        c = farm.client()
        for name in ("LD_PRELOAD", "ld_library_path", "DYLD_INSERT_LIBRARIES", "PYTHONPATH"):
            with pytest.raises(CueFarmError) as err:
                c.submit([job("comp", {"STUDIO": "x", name: "/tmp/evil"})])
            assert name in str(err.value) and "how programs load" in str(err.value)
            assert "loader_env_allow" in str(err.value)
        assert c.jobs(include_finished=True) == []            # nothing was stored
        # The project it is allowed for may set it; ordinary variables were never refused.
        [jid] = c.submit([job("lighting", {"PYTHONPATH": "/studio/py", "STUDIO": "x"})])
        assert c.job(jid)["project"] == "lighting"
        with pytest.raises(CueFarmError, match="PYTHONPATH"):
            c.submit([job("comp", {"PYTHONPATH": "/studio/py"})])


def test_the_allow_list_matches_names_and_projects():
    assert loaderenv.refused({"LD_PRELOAD": "", "HOME": "", "PYTHONPATH": ""}, "p", []) == \
        ["LD_PRELOAD", "PYTHONPATH"]
    assert loaderenv.refused({"LD_PRELOAD": ""}, "p", ["LD_*"]) == []
    assert loaderenv.refused({"LD_PRELOAD": ""}, "p", ["q:LD_PRELOAD"]) == ["LD_PRELOAD"]
    assert loaderenv.refused({"LD_PRELOAD": ""}, "p", ["p:LD_PRELOAD"]) == []
