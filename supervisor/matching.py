"""Does a host suit a layer?  Static requirements, answered once per (layer, host) and cached
until host attributes change; and the plain-words reason when it does not.  Plain functions of
layer and worker fields: no database."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from cuefarm import requirements as reqs
from supervisor.registry import Worker


def mismatch(layer: dict[str, Any], w: Worker, parsed: tuple | None) -> str | None:
    """Why `w` can never run `layer` as things stand (None: it can)."""
    missing = [t for t in (layer.get("tags") or []) if t not in w.tags]
    if missing:
        return f"lacks tag {missing[0]}"
    if layer.get("os") and layer["os"] != w.os:
        return f"runs {w.os or 'an unknown OS'}, not {layer['os']}"
    patterns = layer.get("hosts") or []
    if patterns and not any(fnmatchcase(w.name, pat) for pat in patterns):
        return f"is not one of {', '.join(patterns)}"
    omit = [pat for pat in (layer.get("omit_hosts") or []) if fnmatchcase(w.name, pat)]
    if omit:
        return f"is excluded by omit_hosts {omit[0]}"
    if layer.get("memory") and w.memory_mb and layer["memory"] > w.memory_mb:
        return f"has {w.memory_mb} MB of memory, less than {layer['memory']} MB"
    if layer.get("gpus") and layer["gpus"] > w.gpus:
        return f"has {w.gpus} GPUs, fewer than {layer['gpus']}"
    if layer.get("slots_mode") == "fixed" and layer.get("slots", 1) > w.slots > 0:
        return f"has {w.slots} slots, fewer than {layer['slots']}"
    if parsed is not None and not reqs.evaluate(parsed, w.attributes()):
        return f"does not meet {layer['requirements']!r}"
    return None


class Matcher:
    """Caches static matches per registry version.  A requirement expression over attributes
    that change without a new registry version (host.memory_free, host.load) is evaluated
    afresh on every call; only the rest of the match is cached for such layers."""

    def __init__(self) -> None:
        self.version = -1
        self.cache: dict[tuple[int, int], bool] = {}
        self.parsed: dict[int, tuple | None] = {}
        self.changing: dict[int, bool] = {}     # layer id -> its expression reads CHANGING

    def expression(self, layer: dict[str, Any]) -> tuple | None:
        lid = layer["id"]
        if lid not in self.parsed:
            text = layer.get("requirements")
            try:
                self.parsed[lid] = reqs.parse(text) if text else None
            except reqs.RequirementError:
                self.parsed[lid] = ("lit", False)   # validated at submit; never match garbage
            tree = self.parsed[lid]
            self.changing[lid] = tree is not None and bool(reqs.attributes_used(tree)
                                                           & reqs.CHANGING)
        return self.parsed[lid]

    def matches(self, layer: dict[str, Any], w: Worker, version: int) -> bool:
        if version != self.version:
            self.cache.clear()
            self.version = version
        parsed = self.expression(layer)
        changing = self.changing[layer["id"]]
        key = (layer["id"], w.host_id)
        hit = self.cache.get(key)
        if hit is None:
            hit = self.cache[key] = mismatch(layer, w, None if changing else parsed) is None
        if hit and changing:
            return bool(reqs.evaluate(parsed, w.attributes()))
        return hit

    def forget_layer(self, layer_id: int) -> None:
        """A layer's requirements changed."""
        self.parsed.pop(layer_id, None)
        self.changing.pop(layer_id, None)
        self.cache = {k: v for k, v in self.cache.items() if k[0] != layer_id}
