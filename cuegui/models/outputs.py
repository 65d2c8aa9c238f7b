"""Where a frame's images are: a layer's `outputs` patterns filled in with a frame number.

`out.####.png` pads the number to as many digits as there are `#`; `#FRAME#`, `#ZFRAME#`
(four digits) and printf's `%04d` / `%d` work as in commands.  The paths are the submitter's;
path-map rules (cuefarm.pathmap), when the client has any, turn them into this machine's.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from cuefarm import pathmap

PRINTF = re.compile(r"%(0?)(\d*)d")
HASHES = re.compile(r"#+")


def _pad(n: int, width: int) -> str:
    return f"{n:0{width}d}" if width > 1 else str(n)


def frame_path(pattern: str, number: int) -> str:
    """`pattern` with the frame number put in."""
    text = (pattern.replace("#FRAME_START#", str(number)).replace("#FRAME_END#", str(number))
            .replace("#ZFRAME#", _pad(number, 4)).replace("#FRAME#", str(number)))
    text = PRINTF.sub(lambda m: _pad(number, int(m.group(2) or 1)) if m.group(1)
                      else str(number), text)
    return HASHES.sub(lambda m: _pad(number, len(m.group(0))), text)


def frame_outputs(layer: dict[str, Any] | None, frame: dict[str, Any] | None,
                  rules: Iterable[pathmap.PathRule] = (), target_os: str | None = None
                  ) -> list[str]:
    """The paths of the images `frame` writes (its first frame number, for a chunk), mapped
    for this machine by `rules`; [] when its layer names none."""
    if not layer or not frame:
        return []
    number = frame.get("frame_start")
    if number is None:
        number = frame.get("number")
    if number is None:
        return []
    rules = list(rules)
    out = []
    for pattern in layer.get("outputs") or []:
        path = frame_path(str(pattern), int(number))
        out.append(pathmap.translate_path(rules, path, target_os) if rules else path)
    return out
