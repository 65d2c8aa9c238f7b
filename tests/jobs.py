"""Job dicts for Client.submit."""

from __future__ import annotations

from typing import Any


def job(name: str, layers: list[dict], project: str = "p", **fields: Any) -> dict:
    """A job called `name` in `project` with these layers and any other job fields."""
    return {"name": name, "project": project, "layers": layers, **fields}


def layer(name: str = "r", frames: int = 4, **fields: Any) -> dict:
    """A layer running `true` on frames 1-`frames` with no retries; `fields` add or override."""
    return {"name": name, "command": ["true"], "range": f"1-{frames}", "max_retries": 0, **fields}
