"""Message bodies of day-to-day farm operations (client -> supervisor): the audit trail,
wrangling frames and dependencies, notifications and archives, comments, layer statistics
and host history.  `cuefarm.protocol` names them with every other type; import them from
there."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from cuefarm.body import MAX_REQUEST_ITEMS, Body, Ids, Int


class ListAudit(Body):
    """Answered with Rows, newest first: the actions asked of the supervisor (who, from where,
    what, on which jobs or hosts, when, outcome) matching every filter given.  An artist sees
    only their own."""

    user: str | None = None
    since: float | None = None
    until: float | None = None
    action: str | None = None
    job_id: Int | None = None
    host: str | None = None
    limit: Int = 1000


# --- wrangling frames and dependencies ------------------------------------------------------------

class FrameOrder(Body):
    """Change the dispatch order of frames of one job: by id (`frame_ids`) or by frame number
    (`numbers`) in `layer`.  `front`: the frames go ahead of every other frame of their layer,
    in their present order.  `stagger`: the frames (every waiting frame of `layer` when none is
    named) are spread, every `every`-th first (1, 1+N, 1+2N, ..., then 2, 2+N, ...)."""

    how: str                        # front | stagger
    job_id: Int
    frame_ids: Ids = []
    layer: str | None = None
    numbers: Ids = []
    every: Int = 0                  # stagger: the step, 2 or more


class RetryMoreMemory(Body):
    """Retry frames with their layers' memory reservation raised: to `memory` MB, or by
    `factor` (1.5 when neither is given) of the larger of the reservation and the frames'
    latest peak.  Answered with Row: the frames retried and each layer's memory before and
    after."""

    job_id: Int
    frame_ids: Ids = []
    layer: str | None = None
    numbers: Ids = []
    factor: float | None = None
    memory: Int | None = None


class AddDependency(Body):
    """Make a job's layer (every layer of the job when `layer` is None) wait for another job
    (`kind` job), a layer of one (`kind` layer) or, frame by frame, for the frames of a layer
    with the same numbers (`kind` frame)."""

    kind: str                       # job | layer | frame
    job_id: Int
    target_job_id: Int
    layer: str | None = None
    target_layer: str | None = None


class SetLayerRange(Body):
    """Give a layer a new frame range (and chunk, unchanged when None) while none of its frames
    has run: its frames are made again from them."""

    job_id: Int
    layer: str
    range: str
    chunk: Int | None = None


class ListNotifications(Body):
    """Answered with Rows: notifications not sent yet and those given up on (with `all`,
    sent ones too), newest first."""

    all: bool = False
    limit: Int = 1000


class ListArchives(Body):
    """Answered with Rows: the archive files of retention, oldest first."""


class RestoreArchive(Body):
    """Answered with JobIds: the jobs of archive file `file` (those of `job_ids`; none
    given: all) brought back, read-only."""

    file: str
    job_ids: Ids = msgspec.field(default_factory=list)


class RunRetention(Body):
    """Answered with Done (count: jobs archived; message "more are due" when the pass
    stopped at its bound): a retention pass now, of jobs finished `older_than_days` ago
    (None: the configured age); with `dry_run`, counted only (message says how many)."""

    older_than_days: float | None = None
    dry_run: bool = False


class SetProjectNotify(Body):
    """Answered with Done (count: rules): a project's notification rules for its jobs that
    give none (empty: none; the supervisor's defaults apply)."""

    project: str
    rules: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=MAX_REQUEST_ITEMS)] = \
        msgspec.field(default_factory=list)


class GetProjectNotify(Body):
    """Answered with Row {"project", "rules"}."""

    project: str


class JobNotify(Body):
    """Answered with Row {"job_id", "rules"}: a job's notification rules, after setting them
    to `rules` when given ([]: none of its own; its project's or the supervisor's apply)."""

    job_id: Int
    rules: Annotated[list[dict[str, Any]], msgspec.Meta(max_length=MAX_REQUEST_ITEMS)] | None = None


class RetryNotifications(Body):
    """Answered with Done: failed notifications (those of `ids`; none given: all) are tried
    again."""

    ids: Ids = msgspec.field(default_factory=list)


# --- comments, layer statistics and host history (client -> supervisor) ------------------------

MAX_COMMENT = 10_000                # characters in one comment


class AddComment(Body):
    """A note on one job (`job_id`) or one host (`host`); its author is the user the
    supervisor takes the sender for, never a field of the request."""

    text: str
    job_id: Int | None = None
    host: str | None = None


class ListComments(Body):
    """The comments on one job or one host, oldest first."""

    job_id: Int | None = None
    host: str | None = None


class DeleteComment(Body):
    """Delete one comment: its author may, and admins may delete anyone's."""

    id: Int


class LayerStats(Body):
    """Run time, memory and core-hours of a job's layers, from their frames' attempts; with
    `runtimes`, each layer's row also lists the run times of its succeeded attempts (the
    latest MAX_RUNTIMES)."""

    job_id: Int
    layer: str | None = None        # only this layer
    runtimes: bool = False


MAX_RUNTIMES = 10_000


class HostHistory(Body):
    """A host's load, memory in use and running frames over the last `hours`, at the coarse
    step the supervisor keeps them."""

    host: str
    hours: float = 24.0


class AddKey(Body):
    """Record a user's (with a role) or a worker's (with its host name) CURVE public key;
    answered with a Row {kind, name, role, fingerprint, supervisor} (the supervisor's public
    key, for the key file).  The secret half never leaves the machine that made it."""

    kind: str
    name: str
    public: str
    role: str = "artist"


class ListKeys(Body):
    """Answered with Rows: the farm's keys (fingerprint, kind, name, role, issued, revoked)."""

    include_revoked: bool = False


class RevokeKey(Body):
    """Revoke the live keys `key` names (a fingerprint, a user or a host name): refused at
    once, live connections included.  Answered with Rows: what was revoked."""

    key: str
