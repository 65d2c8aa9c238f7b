"""Database tables (SQLAlchemy 2.0 declarative).  The schema itself is created by Alembic.

Hot paths use these classes through Core statements (`select`, `update`, `insert` on a
Connection), set-based and batched; nothing on the hot path loads ORM objects row by row.
Per-layer counters (`waiting`, `running`, ...) are kept in step with frame states by the same
transaction that moves the frames, so the scheduler and the job list never scan frames.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index,
                        Integer, SmallInteger, String, Text, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# SQLite only gives AUTOINCREMENT semantics to INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "project"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    guaranteed: Mapped[int] = mapped_column(Integer, default=0)
    max_slots: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Job(Base):
    __tablename__ = "job"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id"))
    user: Mapped[str] = mapped_column(String(128))
    priority: Mapped[int] = mapped_column(Integer, default=50)
    state: Mapped[str] = mapped_column(String(16))
    killed: Mapped[bool] = mapped_column(Boolean, default=False)
    min_slots: Mapped[int] = mapped_column(Integer, default=0)
    max_slots: Mapped[int | None] = mapped_column(Integer, nullable=True)
    flagged: Mapped[str] = mapped_column(String(512), default="")   # why it was paused for us
    submitted_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_job_state_priority", "state", "priority"),)


class Layer(Base):
    __tablename__ = "layer"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    idx: Mapped[int] = mapped_column(Integer)
    command: Mapped[Any] = mapped_column(JSON)
    range: Mapped[str] = mapped_column(String(1024))
    chunk: Mapped[int] = mapped_column(Integer, default=1)
    slots: Mapped[int] = mapped_column(Integer, default=1)          # at least this many
    slots_mode: Mapped[str] = mapped_column(String(8), default="fixed")   # fixed | plus | all
    memory: Mapped[int] = mapped_column(Integer, default=0)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    max_retries: Mapped[int] = mapped_column(Integer, default=1)
    env: Mapped[Any] = mapped_column(JSON)
    cwd: Mapped[str | None] = mapped_column(String(4096), nullable=True)
    depends_on: Mapped[Any] = mapped_column(JSON)          # as submitted, for display
    tags: Mapped[Any] = mapped_column(JSON)
    os: Mapped[str | None] = mapped_column(String(16), nullable=True)
    hosts: Mapped[Any] = mapped_column(JSON)
    omit_hosts: Mapped[Any] = mapped_column(JSON)
    requirements: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    limits: Mapped[Any] = mapped_column(JSON)
    timeout: Mapped[int] = mapped_column(Integer, default=0)
    timeout_no_output: Mapped[int] = mapped_column(Integer, default=0)
    outputs: Mapped[Any] = mapped_column(JSON, nullable=True)    # path patterns, for previews
    deps_left: Mapped[int] = mapped_column(Integer, default=0)     # unsatisfied whole-layer deps
    slots_running: Mapped[int] = mapped_column(Integer, default=0)
    frames_total: Mapped[int] = mapped_column(Integer, default=0)
    waiting: Mapped[int] = mapped_column(Integer, default=0)
    depend: Mapped[int] = mapped_column(Integer, default=0)
    running: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    dead: Mapped[int] = mapped_column(Integer, default=0)
    eaten: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ux_layer_job_name", "job_id", "name", unique=True),
                      Index("ix_layer_waiting", "job_id", postgresql_where=text("waiting > 0"),
                            sqlite_where=text("waiting > 0")),
                      # slot and limit counts: the layers with frames running
                      Index("ix_layer_busy", "job_id", postgresql_where=text("running > 0"),
                            sqlite_where=text("running > 0")))


class Dependency(Base):
    """A typed edge: `layer_id` may not run until its target is complete."""

    __tablename__ = "dependency"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))          # layer | frame | job
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), index=True)
    layer_id: Mapped[int] = mapped_column(ForeignKey("layer.id", ondelete="CASCADE"), index=True)
    target_job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    target_layer_id: Mapped[int | None] = mapped_column(
        ForeignKey("layer.id", ondelete="CASCADE"), nullable=True, index=True)
    satisfied: Mapped[bool] = mapped_column(Boolean, default=False)


class Frame(Base):
    """A unit of dispatch (one frame, or a chunk of frames).

    No foreign keys here or on `attempt`: they are the two big tables, and a row-level
    referential check per inserted frame doubled the cost of submitting a 100,000-frame job on
    PostgreSQL.  Whatever deletes jobs must delete their attempts and frames first (nothing
    deletes jobs yet).
    """

    __tablename__ = "frame"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(Id)
    layer_id: Mapped[int] = mapped_column(Id)
    idx: Mapped[int] = mapped_column(Integer)               # dispatch order within the layer
    number: Mapped[int] = mapped_column(Integer)            # first frame of the chunk
    frame_end: Mapped[int] = mapped_column(Integer)         # last frame of the chunk
    label: Mapped[str] = mapped_column(String(256))         # the chunk, e.g. "1-9x2"
    state: Mapped[str] = mapped_column(String(16))
    retries: Mapped[int] = mapped_column(Integer, default=0)   # failures spent
    attempt: Mapped[int] = mapped_column(Integer, default=0)   # number of the latest attempt
    host_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    deps_left: Mapped[int] = mapped_column(Integer, default=0)     # unfinished upstream frames
    kill_pending: Mapped[str | None] = mapped_column(String(16), nullable=True)  # eat | requeue
    updated_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_frame_layer_idx", "layer_id", "idx"),
        # The dispatcher only ever looks for waiting frames of a layer, in order.
        Index("ix_frame_waiting", "layer_id", "idx", postgresql_where=text("state = 'WAITING'"),
              sqlite_where=text("state = 'WAITING'")),
    )


class FrameDep(Base):
    """Frame-by-frame dependency: `frame_id` waits for `target_frame_id`."""

    __tablename__ = "frame_dep"
    frame_id: Mapped[int] = mapped_column(Id, primary_key=True)
    target_frame_id: Mapped[int] = mapped_column(Id, primary_key=True)

    __table_args__ = (Index("ix_frame_dep_target", "target_frame_id"),)


class Limit(Base):
    """A named counter, e.g. third-party licences: running frames (or hosts) needing it."""

    __tablename__ = "limits"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    max: Mapped[int] = mapped_column(Integer)
    per_host: Mapped[bool] = mapped_column(Boolean, default=False)


class LayerLimit(Base):
    __tablename__ = "layer_limit"
    layer_id: Mapped[int] = mapped_column(ForeignKey("layer.id", ondelete="CASCADE"),
                                          primary_key=True)
    limit_id: Mapped[int] = mapped_column(ForeignKey("limits.id", ondelete="CASCADE"),
                                          primary_key=True, index=True)


class JobHost(Base):
    """Failures of one job on one host; past the threshold the host is kept off the job."""

    __tablename__ = "job_host"
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    host_id: Mapped[int] = mapped_column(Id, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    banned_until: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(String(512), default="", server_default="")  # latest


class Attempt(Base):
    """One run of a frame; its id on the wire is "<frame_id>.<number>"."""

    __tablename__ = "attempt"
    frame_id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(Id)
    layer_id: Mapped[int] = mapped_column(Id)
    host_id: Mapped[int] = mapped_column(Id)
    host_name: Mapped[str] = mapped_column(String(256))
    state: Mapped[str] = mapped_column(String(16))
    slots: Mapped[int] = mapped_column(Integer, default=1)          # granted
    memory: Mapped[int] = mapped_column(Integer, default=0)         # reserved MB
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    exit_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    rss: Mapped[int] = mapped_column(BigInteger, default=0)
    peak_rss: Mapped[int] = mapped_column(BigInteger, default=0)
    cpu_time: Mapped[float] = mapped_column(Float, default=0.0)
    reason: Mapped[str] = mapped_column(String(1024), default="")
    # percent, from the progress lines the frame printed (rqd.progress); 100 once it succeeded
    progress: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)

    __table_args__ = (Index("ix_attempt_running_host", "host_id",
                            postgresql_where=text("state = 'RUNNING'"),
                            sqlite_where=text("state = 'RUNNING'")),
                      # limit counts: the running attempts of the layers needing a limit
                      Index("ix_attempt_running_layer", "layer_id", "host_id",
                            postgresql_where=text("state = 'RUNNING'"),
                            sqlite_where=text("state = 'RUNNING'")))


class Host(Base):
    __tablename__ = "host"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(256), unique=True)
    hostname: Mapped[str] = mapped_column(String(256))
    os: Mapped[str] = mapped_column(String(32))
    cores: Mapped[int] = mapped_column(Integer)
    # Megabytes in 64 bits: a petabyte file system's free space is past 2^31 MB.
    memory_mb: Mapped[int] = mapped_column(BigInteger)
    memory_free_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[Any] = mapped_column(JSON, default=list)           # as the worker reports them
    tags_added: Mapped[Any] = mapped_column(JSON, default=list)     # by an admin
    tags_removed: Mapped[Any] = mapped_column(JSON, default=list)   # by an admin
    address: Mapped[str] = mapped_column(String(64), default="")
    disk_free_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    slots_override: Mapped[int | None] = mapped_column(Integer, nullable=True)  # set by an admin
    lock_kind: Mapped[str] = mapped_column(String(16), default="")  # manual | schedule
    lock_slots: Mapped[int | None] = mapped_column(Integer, nullable=True)  # partial lock
    lock_override_until: Mapped[float] = mapped_column(Float, default=0.0)  # manual beats schedule
    drain: Mapped[str | None] = mapped_column(String(16), nullable=True)    # exit | reboot | stay
    nimby: Mapped[bool] = mapped_column(Boolean, default=False)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    slots_configured: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    lock: Mapped[str] = mapped_column(String(16), default="OPEN")
    load: Mapped[float] = mapped_column(Float, default=0.0)
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)
    last_seen: Mapped[float] = mapped_column(Float)
    registered_at: Mapped[float] = mapped_column(Float)
    supervisor_id: Mapped[str] = mapped_column(String(64), default="")
    version: Mapped[str] = mapped_column(String(32), default="")


class Admission(Base):
    """Workers an admin admitted or banned, and those refused and waiting (pending)."""

    __tablename__ = "admission"
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))       # pending | admitted | banned
    address: Mapped[str] = mapped_column(String(64), default="")
    reason: Mapped[str] = mapped_column(String(512), default="")
    first_seen: Mapped[float] = mapped_column(Float, default=0.0)
    last_seen: Mapped[float] = mapped_column(Float, default=0.0)
    key: Mapped[str | None] = mapped_column(String(40), nullable=True)   # CURVE public key


class FarmKey(Base):
    """A user's or a worker's CURVE public key: who it is (a user with a role, or a host
    name), who issued it and when, and whether it was revoked."""

    __tablename__ = "farm_key"
    __table_args__ = (Index("ix_farm_key_name", "kind", "name"),)
    public: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))         # user | worker
    name: Mapped[str] = mapped_column(String(256))        # user name or host name
    role: Mapped[str] = mapped_column(String(16), default="", server_default="")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(256), default="", server_default="")
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(256), nullable=True)


class Setting(Base):
    """Farm-wide settings changed at run time (admission policy, ...), as JSON values."""

    __tablename__ = "setting"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class LockSchedule(Base):
    """A weekly lock window for a host (name pattern) or a tag."""

    __tablename__ = "lock_schedule"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(256))     # host name pattern, or tag:NAME
    days: Mapped[Any] = mapped_column(JSON)              # 0 = Monday .. 6 = Sunday
    start: Mapped[str] = mapped_column(String(5))        # "09:00"
    end: Mapped[str] = mapped_column(String(5))          # "19:00" (may wrap past midnight)
    purge: Mapped[bool] = mapped_column(Boolean, default=False)


class PathMap(Base):
    """A central path translation rule for workers of one OS (and optionally one tag)."""

    __tablename__ = "path_map"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    os: Mapped[str] = mapped_column(String(16))
    tag: Mapped[str | None] = mapped_column(String(64), nullable=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[str] = mapped_column(String(1024))
    target: Mapped[str] = mapped_column(String(1024))


class Submission(Base):
    """The jobs a submit created, under the id its client gave it: a retried submit (no reply
    came) is answered with these instead of creating the jobs again."""

    __tablename__ = "submission"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(128))
    job_ids: Mapped[Any] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, index=True)


class AuditEntry(Base):
    """One action someone asked the supervisor for: who, from where, what, on which jobs or
    hosts, when, and how it went."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_user_at", "user", "at"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    user: Mapped[str] = mapped_column(String(128))
    address: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    objects: Mapped[str] = mapped_column(String(2000))     # "job 12, job 13", "host w1"
    detail: Mapped[Any] = mapped_column(JSON)              # the request, long values cut
    outcome: Mapped[str] = mapped_column(String(16))       # ok | refused | failed
    message: Mapped[str] = mapped_column(String(1000))


class SupervisorRow(Base):
    """A supervisor serving this farm: each writes its own row every few seconds, so any of
    them can say which are alive, what they serve and how busy they are."""

    __tablename__ = "supervisor"
    owner: Mapped[str] = mapped_column(String(64), primary_key=True)   # machine:port
    run_id: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    hosts: Mapped[int] = mapped_column(Integer, default=0)         # workers connected to it
    slots_used: Mapped[int] = mapped_column(Integer, default=0)
    slots_total: Mapped[int] = mapped_column(Integer, default=0)
    dispatched: Mapped[int] = mapped_column(BigInteger, default=0)  # frames since it started
    cpu_percent: Mapped[float] = mapped_column(Float, default=0.0)  # of its process
    rss_mb: Mapped[float] = mapped_column(Float, default=0.0)


class Comment(Base):
    """A note someone left on one job or one host: who wrote what and when."""

    __tablename__ = "comment"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"),
                                               nullable=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"),
                                                nullable=True)
    author: Mapped[str] = mapped_column(String(128))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_comment_job", "job_id"), Index("ix_comment_host", "host_id"),
                      CheckConstraint("(job_id IS NULL) <> (host_id IS NULL)",
                                      name="ck_comment_subject"))


class HostSample(Base):
    """One point of a host's history, at a coarse step (the supervisor's host_history_step):
    its load, memory in use and frames running then.  Old points are pruned."""

    __tablename__ = "host_sample"
    host_id: Mapped[int] = mapped_column(ForeignKey("host.id", ondelete="CASCADE"),
                                         primary_key=True)
    t: Mapped[float] = mapped_column(Float, primary_key=True)     # epoch seconds, step start
    load: Mapped[float] = mapped_column(Float, default=0.0)
    memory_used_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    running: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (Index("ix_host_sample_t", "t"),)


def attempt_id(frame_id: int, number: int) -> str:
    return f"{frame_id}.{number}"


def storable(text: str) -> str:
    """Free text from the network (a worker's reason for an end) as both databases take it:
    a NUL character, which PostgreSQL's driver refuses outside any database error, becomes
    U+FFFD."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def parse_attempt_id(text_id: str) -> tuple[int, int] | None:
    """Split "<frame_id>.<number>"; None when it is not one (input from the network)."""
    head, sep, tail = text_id.partition(".")
    if not sep or not head.isascii() or not tail.isascii() or not head.isdigit() \
            or not tail.isdigit() or len(head) > 18 or len(tail) > 9:
        return None
    return int(head), int(tail)
