"""The wire protocol: one versioned envelope, typed bodies, one encode/decode pair.

Every ZeroMQ message payload is a msgpack-encoded `Envelope`.  Its `body` is kept raw until the
`type` is known, then decoded against that type's struct, so a malformed body for a known type is
reported precisely and an unknown type never reaches a handler.  Nothing here trusts its input:
every failure is a `ProtocolError` with a code the receiver counts and echoes in an error reply.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from cuefarm.body import (  # noqa: F401 - every body type is protocol.X
    MAX_REQUEST_ITEMS, Body, Ids, Int, Names, Values, in_parts)
from cuefarm.jobkeys import NO_NUL
from cuefarm.operations import (  # noqa: F401 - named here with every other type
    AddComment, AddDependency, DeleteComment, FrameOrder, GetProjectNotify, HostHistory,
    AddKey, ListKeys, RevokeKey,
    JobNotify, LayerStats, ListArchives, ListAudit, ListComments, ListNotifications,
    MAX_COMMENT, MAX_RUNTIMES, RestoreArchive, RetryMoreMemory, RetryNotifications,
    RunRetention, SetLayerRange, SetProjectNotify)

PROTOCOL_VERSION = 1
# Replies to clients may carry large pages (frames, logs); worker traffic is small.
MAX_CLIENT_MESSAGE = 64 * 1024 * 1024
# What a client may send in one request: a submission of thousands of jobs fits, and decoding
# it, however it is made, holds the supervisor's loop no more than some 150 ms (16 MB of the
# smallest items).
MAX_CLIENT_REQUEST = 16 * 1024 * 1024
MAX_WORKER_MESSAGE = 8 * 1024 * 1024
MAX_FRAMES_PAGE = 50_000            # the largest `limit` of a list_frames request


class ProtocolError(Exception):
    """Input that cannot be accepted; `code` is stable and counted, `message` is for people."""

    def __init__(self, code: str, message: str, request_id: int = 0):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class Envelope(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    v: Int
    type: str
    id: Int = 0
    user: str = ""                      # identity slot: OS user now, authenticated key later
    body: msgspec.Raw = msgspec.Raw(b"\xc0")


# --- generic replies -------------------------------------------------------------------------

class Error(Body):
    code: str
    message: str
    field: str | None = None


class Done(Body):
    count: Int = 0
    message: str = ""


class Rows(Body):
    rows: list[dict[str, Any]]


class Row(Body):
    row: dict[str, Any]


# --- client API (client -> supervisor) ----------------------------------------------------------

class Ping(Body):
    pass


class Pong(Body):
    version: str
    supervisor_id: str
    event_seq: Int
    events_port: Int
    max_frames_per_job: Int = 1_000_000


class Submit(Body):
    jobs: list[dict[str, Any]]
    # The client's id for this submit, sent again unchanged when it retries: the supervisor
    # answers a retry with the first one's jobs instead of creating them twice.
    submission: str | None = None


class JobIds(Body):
    job_ids: list[Int]


class ListJobs(Body):
    project: str | None = None
    user: str | None = None
    include_finished: bool = True


class JobRef(Body):
    job_id: Int


class ListFrames(Body):
    """A job's frames (a page of them: `offset`, `limit`), or the frames running on `host`."""

    job_id: Int | None = None
    layer: str | None = None
    states: Names | None = None
    offset: Int = 0                 # rows to skip, in the supervisor's order
    limit: Int | None = None        # at most this many (1..MAX_FRAMES_PAGE); None: all
    host: str | None = None         # instead of job_id: what runs on this host, every job


class ListHosts(Body):
    pass


class JobControl(Body):
    action: str                     # pause | resume | kill | retry | eat | priority
    job_ids: Ids
    value: Int | None = None        # the new priority for "priority"
    clear_bans: bool = False        # retry, resume: forget the jobs' bad hosts first


class FrameControl(Body):
    """Act on frames of one job: by id (`frame_ids`, as listed), or by frame number (`numbers`,
    each meaning the frame or chunk that runs it) in `layer`, which may be left out when the
    job has one layer.  Ids or numbers not in the job are refused."""

    action: str                     # retry | kill | eat
    job_id: Int
    frame_ids: Ids = []
    layer: str | None = None
    numbers: Ids = []


class HostControl(Body):
    """Lock or unlock hosts: names, glob patterns ("render-*") or "tag:NAME"."""

    action: str                     # lock | unlock
    hosts: Names
    purge: bool = False
    slots: Int | None = None        # lock: leave this many slots (a partial lock)


class HostSlots(Body):
    host: str
    slots: Int | None               # None: back to what the worker offers


class HostTags(Body):
    host: str
    add: Names = []
    remove: Names = []


class HostDrain(Body):
    hosts: Names
    then: str = "stay"              # exit | reboot | stay
    cancel: bool = False


class AdmissionControl(Body):
    action: str                     # admit | ban | forget
    names: Names
    reason: str = ""


class ListAdmission(Body):
    pass


class SetAdmission(Body):
    mode: str | None = None         # any | ranges | named
    networks: Names | None = None
    patterns: Names | None = None


class SetSchedule(Body):
    target: str                     # host name pattern, or tag:NAME
    days: Annotated[list[Int], msgspec.Meta(max_length=7)]   # 0 = Monday .. 6 = Sunday
    start: str                      # "09:00"
    end: str                        # "19:00"
    purge: bool = False


class ListSchedules(Body):
    pass


class DeleteSchedule(Body):
    id: Int


class AddPathMap(Body):
    os: str
    source: str
    target: str
    tag: str | None = None
    position: Int | None = None


class ListPathMaps(Body):
    pass


class DeletePathMap(Body):
    id: Int


class CheckPath(Body):
    host: str
    path: str


class GetLog(Body):
    job_id: Int
    layer: str | None               # None: the job's only layer
    frame: Int
    attempt: Int | None = None      # attempt number of that frame; the latest when omitted
    offset: Int = 0                 # negative: that many bytes from the end
    limit: Int = 1024 * 1024


class LogChunk(Body):
    attempt_id: str
    host: str
    offset: Int                     # byte offset of `data` in the log file
    size: Int                       # the file's size when read
    data: bytes


class SetJob(Body):
    """Change a job after submission: priority, min_slots, max_slots, project."""

    job_id: Int
    values: Values


class SetLayer(Body):
    """Change a layer after submission: its requirements, reservations, limits, timeouts."""

    job_id: Int
    layer: str
    values: Values


class SetProject(Body):
    name: str
    guaranteed: Int | None = None
    max_slots: Int | None = None
    unlimited: bool = False         # clear the maximum


class ListProjects(Body):
    pass


class SetLimit(Body):
    name: str
    max: Int
    per_host: bool | None = None


class DeleteLimit(Body):
    name: str


class ListLimits(Body):
    pass


class DependencyControl(Body):
    action: str                     # satisfy | drop
    job_id: Int
    dependency_id: Int


class Why(Body):
    job_id: Int
    layer: str | None = None
    frame: Int | None = None


class NextForHost(Body):
    host: str
    limit: Int = 10


class ClearBadHosts(Body):
    job_id: Int
    host: str | None = None         # None: every host on the job's bad-host list


# --- worker link (rqd <-> supervisor) ---------------------------------------------------------

# A frame's progress: a whole percentage.
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
# What a worker says about itself is kept (the host's row, the supervisor's registry, every
# event batch): text longer than the database holds is refused when the message is decoded,
# so a host named with a megabyte never gets in.
# No NUL character either: PostgreSQL's driver refuses one in any text, outside any database
# error (a worker named with one stopped the supervisor when it registered).
HostText = Annotated[str, msgspec.Meta(max_length=256, pattern=NO_NUL)]  # name, hostname
ShortText = Annotated[str, msgspec.Meta(max_length=32, pattern=NO_NUL)]  # os, rqd's version
AttemptId = Annotated[str, msgspec.Meta(max_length=64, pattern=NO_NUL)]  # "<frame>.<attempt>"
WorkerTag = Annotated[str, msgspec.Meta(max_length=64, pattern=NO_NUL)]  # as a job's tags are
Token = Annotated[str, msgspec.Meta(max_length=64, pattern=NO_NUL)]      # farm id, drain's end
# Its measures too: never negative, never NaN or infinite (SQLite stores a NaN as NULL, and
# either database would keep it in every sum and chart), and within the columns they go to
# (PostgreSQL refuses the whole write of a batch of rows for one value past its column).
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]   # cores, slots, GPUs, a pid
Amount = Annotated[int, msgspec.Meta(ge=0, le=2**48)]      # MB, bytes (64-bit columns)
Measure = Annotated[float, msgspec.Meta(ge=0.0, le=1e12)]  # seconds, epoch seconds, a load
ExitStatus = Annotated[int, msgspec.Meta(ge=-(2**31), le=2**31 - 1)]


class RunningAttempt(Body):
    attempt_id: AttemptId
    pid: Count = 0
    rss: Amount = 0                 # bytes, the whole process tree
    peak_rss: Amount = 0
    cpu_time: Measure = 0.0         # seconds, user + system, the whole tree
    started: Measure = 0.0          # wall-clock epoch seconds
    # How far the frame is, from the progress lines it printed (rqd.progress); None: it
    # printed none yet.
    progress: Percent | None = None


class Completion(Body):
    attempt_id: AttemptId
    exit_status: ExitStatus         # 0 is success; -N killed by signal N
    started: Measure
    stopped: Measure
    peak_rss: Amount = 0
    cpu_time: Measure = 0.0
    reason: str = ""                # "killed", "launch failed: ...", ... when not a plain exit


class PathRule(Body):
    """Rewrite paths starting with `source` to start with `target` (first match wins)."""

    source: str
    target: str


class Register(Body):
    name: HostText
    hostname: HostText
    os: ShortText
    cores: Count
    memory_mb: Amount
    slots: Count
    version: ShortText
    running: list[RunningAttempt] = []
    completions: list[Completion] = []
    tags: list[WorkerTag] = []      # from rqd's config plus hardware tags (os, gpu)
    gpus: Count = 0
    disk_free_mb: Amount = 0
    nimby: bool = False             # locked locally because someone is using the machine
    path_maps: list[PathRule] = []  # the worker's own rules (override the supervisor's)
    # Attempt ids of further kept completions that did not fit in `completions`: they follow
    # in Complete messages, and the supervisor must not take those attempts for lost.
    kept: list[AttemptId] = []
    # The previous run of this rqd ended a drain this way ("exit" or "reboot"): the drain is
    # done and must not be asked again.  "" for none.
    drained: Token = ""
    # The highest Launch.seq received since the worker last got Registered, as in heartbeats:
    # the running list proves an absence only for launches at or below it.
    launch_seq: Int = 0
    # The farm (Registered.farm_id) that `running`, `completions` and `kept` belong to; a
    # supervisor of another farm takes none of them.  "" when the worker has served no farm.
    farm_id: Token = ""


class Registered(Body):
    host_id: Int
    heartbeat_interval: float
    # Seconds of silence after which the supervisor may run this worker's frames elsewhere
    # (its host expiry plus release time); the worker kills its frames before then.  0: unknown.
    release_after: float = 0.0
    # The farm's identity (made once, kept in its database): attempt ids are unique within a
    # farm only, so a worker keys its logs and kept state by it.
    farm_id: str = ""


class Refused(Body):
    reason: str
    retry_after: float = 30.0


class Heartbeat(Body):
    running: list[RunningAttempt] = []
    load: Measure = 0.0
    cpu_percent: Measure = 0.0
    memory_free_mb: Amount = 0
    disk_free_mb: Amount = 0
    gpus: Count = 0
    nimby: bool = False
    draining: bool = False
    kept: list[AttemptId] = []      # attempt ids of completions kept, not yet acknowledged
    # The highest Launch.seq received since the worker last registered: a launch at or below
    # it that the worker neither runs nor keeps was received and lost, or never arrived.
    launch_seq: Int = 0


class Ack(Body):
    slots: Int | None = None        # the host's slot total now (0: locked); None: not said


class Reregister(Body):
    reason: str


class Launch(Body):
    attempt_id: str
    job_id: Int
    job: str
    project: str
    user: str
    layer: str
    frame_id: Int
    frames: str                     # label of the chunk, e.g. "1-9x2"
    frame_start: Int
    frame_end: Int
    command: list[str] | str
    env: dict[str, str] = {}
    slots: Int = 1
    memory_mb: Int = 0
    cwd: str | None = None          # None: rqd makes a fresh one (rqd.runner)
    path_maps: list[PathRule] = []  # the supervisor's rules for this host, applied by rqd
    run_as: str | None = None       # when rqd runs as root: the job's user
    timeout: Int = 0                # kill after this many seconds of runtime (0: never)
    timeout_no_output: Int = 0      # kill after this many seconds without log output (0: never)
    seq: Int = 0                    # increases with every launch a supervisor sends


class Drain(Body):
    """Finish current frames, accept nothing new, then `then`: "exit", "reboot" or "stay".
    `cancel` undoes a drain that has not finished."""

    then: str = "stay"
    cancel: bool = False


class Refuse(Body):
    attempt_id: AttemptId
    reason: str


class Kill(Body):
    attempt_ids: list[str]
    reason: str = ""


class Complete(Body):
    completions: list[Completion]


class CompleteAck(Body):
    attempt_ids: list[str]


class LogRequest(Body):
    token: Int
    attempt_id: str
    offset: Int = 0
    limit: Int = 1024 * 1024


class LogReply(Body):
    token: Int
    attempt_id: str
    offset: Int = 0
    size: Int = 0
    data: bytes = b""
    error: str = ""


# --- events (supervisor PUB -> clients) --------------------------------------------------------

class EventBatch(Body):
    """Rows that changed since the previous batch; `seq` increases by one per batch."""

    seq: Int
    supervisor_id: str
    jobs: list[dict[str, Any]] = []
    layers: list[dict[str, Any]] = []
    frames: list[dict[str, Any]] = []
    hosts: list[dict[str, Any]] = []
    deleted_jobs: list[Int] = []
    # Too many rows changed to list (a kill or retry of a huge job): the rows above are partial,
    # and a subscriber re-reads what it shows, as after a sequence gap.
    resync: bool = False
    # What this subscriber may see changed (keys, project members): subscribe again.
    resubscribe: bool = False


# --- licences, usage and metrics (client -> supervisor) ----------------------------------------

class GetLicences(Body):
    pass


class SetLicences(Body):
    """Change the worker licence terms; only what is given changes."""

    count: Int | None = None        # prepaid worker licences
    unlimited: bool = False         # no licence cap at all
    metered: bool | None = None     # let the farm go past the count, billed per minute
    sink: str | None = None         # where overage reports go: http(s) URL or a directory
    rate: float | str | None = None  # $ per overage worker-hour; a decimal string is exact


class ListLicenceReports(Body):
    limit: Int = 100


class GetUsage(Body):
    start: str                      # first day, YYYY-MM-DD (UTC)
    end: str                        # last day, included
    by: str = "project"             # project | user | day


class GetMetrics(Body):
    pass


class MetricHistory(Body):
    series: str                     # e.g. "host.cpu" (see `cuefarm metrics`)
    start: float                    # epoch seconds
    end: float
    resolution: float = 0.0         # seconds per point; 0: as stored


class MetricPoints(Body):
    series: str
    resolution: float               # seconds per point; 0: as stored
    points: list[tuple[float, float]]


# --- access (client -> supervisor) --------------------------------------------------------------

class WhoAmI(Body):
    """Answered with a Row: {user, role, open}: who the supervisor takes the sender for."""


class SetProjectMembers(Body):
    """Restrict a project to these users (artists who are not members do not see its jobs);
    an empty list opens it to everyone again."""

    name: str
    members: Names = []


class ListSupervisors(Body):
    """Answered with Rows: the supervisors serving the farm (sharing its database)."""



MESSAGE_TYPES: dict[str, type[Body]] = {
    "error": Error, "done": Done, "rows": Rows, "row": Row,
    "ping": Ping, "pong": Pong, "submit": Submit, "job_ids": JobIds,
    "list_jobs": ListJobs, "get_job": JobRef, "list_layers": JobRef, "list_frames": ListFrames,
    "list_hosts": ListHosts, "job_control": JobControl, "frame_control": FrameControl,
    "host_control": HostControl, "get_log": GetLog, "log_chunk": LogChunk,
    "register": Register, "registered": Registered, "refused": Refused, "heartbeat": Heartbeat,
    "ack": Ack, "reregister": Reregister, "launch": Launch, "refuse": Refuse, "kill": Kill,
    "complete": Complete, "complete_ack": CompleteAck, "log_request": LogRequest,
    "log_reply": LogReply, "events": EventBatch, "drain": Drain, "path_rule": PathRule,
    "set_job": SetJob, "set_layer": SetLayer, "set_project": SetProject,
    "list_projects": ListProjects, "set_limit": SetLimit, "delete_limit": DeleteLimit,
    "list_limits": ListLimits, "list_dependencies": JobRef,
    "dependency_control": DependencyControl, "why": Why, "next_for_host": NextForHost,
    "bad_hosts": JobRef, "clear_bad_hosts": ClearBadHosts,
    "host_slots": HostSlots, "host_tags": HostTags, "host_drain": HostDrain,
    "admission_control": AdmissionControl, "list_admission": ListAdmission,
    "set_admission": SetAdmission, "set_schedule": SetSchedule, "list_schedules": ListSchedules,
    "delete_schedule": DeleteSchedule, "add_path_map": AddPathMap,
    "list_path_maps": ListPathMaps, "delete_path_map": DeletePathMap, "check_path": CheckPath,
    "licences": GetLicences, "set_licences": SetLicences, "licence_reports": ListLicenceReports,
    "usage": GetUsage, "metrics": GetMetrics, "metric_history": MetricHistory,
    "metric_points": MetricPoints,
    "whoami": WhoAmI, "set_project_members": SetProjectMembers,
    "add_key": AddKey, "list_keys": ListKeys, "revoke_key": RevokeKey,
    "list_supervisors": ListSupervisors, "list_audit": ListAudit,
    "frame_order": FrameOrder, "retry_more_memory": RetryMoreMemory,
    "add_dependency": AddDependency, "list_dependants": JobRef,
    "set_layer_range": SetLayerRange,
    "export_job": JobRef,
    "list_notifications": ListNotifications, "retry_notifications": RetryNotifications,
    "list_archives": ListArchives, "restore_archive": RestoreArchive,
    "run_retention": RunRetention,
    "set_project_notify": SetProjectNotify, "get_project_notify": GetProjectNotify,
    "job_notify": JobNotify,
    "add_comment": AddComment, "list_comments": ListComments, "delete_comment": DeleteComment,
    "layer_stats": LayerStats, "host_history": HostHistory,
}
TYPE_NAMES: dict[type[Body], str] = {}
for _name, _cls in MESSAGE_TYPES.items():
    TYPE_NAMES.setdefault(_cls, _name)

CLIENT_REQUESTS = frozenset({
    "ping", "submit", "list_jobs", "get_job", "list_layers", "list_frames", "list_hosts",
    "job_control", "frame_control", "host_control", "get_log", "set_job", "set_layer",
    "set_project", "list_projects", "set_limit", "delete_limit", "list_limits",
    "list_dependencies", "dependency_control", "why", "next_for_host", "host_slots",
    "host_tags", "host_drain", "admission_control", "list_admission", "set_admission",
    "set_schedule", "list_schedules", "delete_schedule", "add_path_map", "list_path_maps",
    "delete_path_map", "check_path",
    "bad_hosts", "clear_bad_hosts",
    "licences", "set_licences", "licence_reports", "usage", "metrics", "metric_history",
    "whoami", "set_project_members", "list_supervisors", "list_audit",
    "add_key", "list_keys", "revoke_key",
    "frame_order", "retry_more_memory", "add_dependency", "list_dependants",
    "set_layer_range",
    "export_job", "list_notifications", "retry_notifications",
    "list_archives", "restore_archive", "run_retention",
    "set_project_notify", "get_project_notify", "job_notify",
    "add_comment", "list_comments", "delete_comment", "layer_stats", "host_history"})
WORKER_MESSAGES = frozenset({"register", "heartbeat", "refuse", "complete", "log_reply"})

_encoder = msgspec.msgpack.Encoder()
_envelope_decoder = msgspec.msgpack.Decoder(Envelope)
_body_decoders = {name: msgspec.msgpack.Decoder(cls) for name, cls in MESSAGE_TYPES.items()}


def encode(body: Body, request_id: int = 0, user: str = "", type_name: str | None = None) -> bytes:
    """Encode one message; the type name is derived from the body's class unless given."""
    name = type_name or TYPE_NAMES[type(body)]
    raw = msgspec.Raw(_encoder.encode(body))
    return _encoder.encode(Envelope(PROTOCOL_VERSION, name, request_id, user, raw))


def decode_envelope(data: bytes, max_size: int = MAX_CLIENT_MESSAGE) -> Envelope:
    """Decode a message's envelope only, its body left raw; raise ProtocolError for anything
    oversized, malformed or of another protocol version."""
    if len(data) > max_size:
        raise ProtocolError("oversized", f"message of {len(data)} bytes exceeds {max_size}")
    try:
        env = _envelope_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError,
            RecursionError) as exc:
        raise ProtocolError("malformed", f"cannot decode envelope: {exc}") from None
    if env.v != PROTOCOL_VERSION:
        raise ProtocolError("version", f"protocol version {env.v} is not {PROTOCOL_VERSION}",
                            env.id)
    return env


def decode_body(env: Envelope, allowed: frozenset[str] | None = None) -> Body:
    """Decode an envelope's body against its type; raise ProtocolError for an unknown (or not
    `allowed`) type or a body that does not fit it."""
    decoder = _body_decoders.get(env.type)
    if decoder is None or (allowed is not None and env.type not in allowed):
        # The name is cut short in the reply: an error must not echo megabytes back.
        raise ProtocolError("unknown_type", f"unknown message type {env.type[:80]!r}", env.id)
    try:
        return decoder.decode(env.body)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError,
            RecursionError) as exc:
        raise ProtocolError("malformed", f"bad {env.type} body: {exc}", env.id) from None


def decode(data: bytes, max_size: int = MAX_CLIENT_MESSAGE,
           allowed: frozenset[str] | None = None) -> tuple[Envelope, Body]:
    """Decode one message; raise ProtocolError for anything oversized, malformed or unknown."""
    env = decode_envelope(data, max_size)
    return env, decode_body(env, allowed)


def to_builtins(obj: Any) -> Any:
    """Plain dicts/lists of a struct, for JSON output."""
    return msgspec.to_builtins(obj)
