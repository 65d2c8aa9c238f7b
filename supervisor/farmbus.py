"""What supervisors sharing a database tell one another on the farm bus (`store.bus`).

One notice per transaction that changed the farm: the rows it changed (so each supervisor's
subscribers hear of changes made through any supervisor), whether frames may have become
runnable (every supervisor runs a dispatch pass for its own workers), and kills of attempts
on hosts another supervisor serves.  A notice that would not fit lists fewer rows and says
`partial` (subscribers re-read what they show), or kills by host (`recheck`: the serving
supervisor kills what its workers run that the database no longer has running).
"""

from __future__ import annotations

import msgspec

from supervisor.outbox import Outbox
from supervisor.store.bus import MAX_PAYLOAD


class Notice(msgspec.Struct, omit_defaults=True, forbid_unknown_fields=False):
    sv: str                                   # the sending supervisor's run id
    wake: bool = False
    jobs: list[int] = []
    layers: list[int] = []
    frames: list[int] = []
    hosts: list[int] = []
    partial: bool = False
    kills: list[tuple[str, int]] = []         # (attempt id, host id)
    recheck: list[int] = []                   # hosts whose running attempts to compare
    reason: str = ""
    to: str = ""                              # for one supervisor only (its run id)
    reload: list[str] = []          # settings to read again: admission, path maps, licences
    # [token, host id, attempt id, offset, limit]: read that log from the worker
    log_ask: list | None = None
    # [token, index, pieces, attempt id, offset, size, error, base64 data] of its answer
    log_piece: list | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Notice)


def notices_of(sender: str, out: Outbox) -> list[str]:
    """The notices for what `out` staged: the changes (if any), then the messages it asked to
    send (log requests and answers)."""
    first = _changes(sender, out)
    return ([first] if first is not None else []) + [
        _encoder.encode(Notice(sender, **fields)).decode() for fields in out.to_farm]


def _changes(sender: str, out: Outbox) -> str | None:
    t = out.touched
    wake = out.dispatch or out.farm_wake
    if not (wake or out.elsewhere or t.jobs or t.layers or t.frames or t.hosts):
        return None
    n = Notice(sender, wake, sorted(t.jobs), sorted(t.layers), sorted(t.frames),
               sorted(t.hosts), kills=list(out.elsewhere), reason=out.kill_reason[:200])
    data = _encoder.encode(n)
    if len(data) > MAX_PAYLOAD and n.kills:
        n.recheck, n.kills = sorted({hid for _, hid in n.kills}), []
        data = _encoder.encode(n)
    if len(data) > MAX_PAYLOAD:
        n.frames, n.partial = [], True
        data = _encoder.encode(n)
    if len(data) > MAX_PAYLOAD:
        n.jobs, n.layers, n.hosts = [], [], []
        data = _encoder.encode(n)
    if len(data) > MAX_PAYLOAD:      # thousands of hosts to recheck: all of them
        n.recheck = [-1]
        data = _encoder.encode(n)
    return data.decode()


def rows_notices(sender: str, hosts: set[int], frames: set[int]) -> list[str]:
    """Notices of rows changed without new work (heartbeat figures of hosts and of their
    running frames), in as many notices as they take: never `partial`, which would make
    every subscriber of every supervisor re-read the farm several times a second."""
    out: list[str] = []
    ids = [("hosts", h) for h in sorted(hosts)] + [("frames", f) for f in sorted(frames)]
    per = max(1, MAX_PAYLOAD // 12)     # ids of up to 10 digits and a comma, with room
    for start in range(0, len(ids), per):
        part = ids[start:start + per]
        n = Notice(sender, hosts=[i for k, i in part if k == "hosts"],
                   frames=[i for k, i in part if k == "frames"])
        out.append(_encoder.encode(n).decode())
    return out


def read(payload: str) -> Notice | None:
    """A notice from its payload; None for one this version cannot read."""
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError:
        return None
