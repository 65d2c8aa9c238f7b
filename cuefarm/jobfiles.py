"""Job documents in the forms CueFarm reads, turned into CueFarm job dicts.

A submission may mix CueFarm jobs (docs/job-file.md), Open Job Description templates
(cuefarm.openjd) and Qube!-style job dicts (cuefarm.qube); `native` maps each to CueFarm's
form so that the rest of the pipeline (validation, the supervisor) sees one kind of job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cuefarm import openjd, qube


def native(docs: list[Any], parameters: dict[str, Any] | None = None, source: str = "jobs",
           template_dir: Path | None = None) -> list[Any]:
    """`docs` with every OpenJD template and Qube!-style dict replaced by the CueFarm job(s)
    it maps to; CueFarm jobs (and anything unrecognised, for validation to refuse) as they
    are.  `parameters` fill in OpenJD job parameters; given without a template they are an
    error.  SpecError names the document at fault as `source[i]`."""
    out: list[Any] = []
    templates = 0
    for i, d in enumerate(docs):
        path = f"{source}[{i}]"
        if openjd.is_template(d):
            templates += 1
            out.extend(openjd.to_jobs(d, parameters, path, template_dir))
        elif qube.is_qube(d):
            out.append(qube.to_job(d, path))
        else:
            out.append(d)
    if parameters and not templates:
        from cuefarm.spec import SpecError

        raise SpecError("-p", "job parameters are for Open Job Description templates; "
                              "there is none here")
    return out
