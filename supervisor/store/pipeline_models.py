"""Tables of the pipeline around the farm: notifications asked for by jobs, their outbox, and
jobs restored from archives.

Migrations 0016 (notifications) and 0017 (retention) create them.  `job_notify` holds a job's
rules (only jobs that have some); `notification` is the durable outbox: a row is written in the
same transaction as the state change that causes it, and the sender (supervisor.notify) claims,
sends and marks it.  `restored_job` marks jobs brought back from an archive (read-only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from supervisor.store.models import Base, Id, Job


class JobNotify(Base):
    """What a job asked to be told about: a list of {"on": [events], "email"|"webhook": ...}."""

    __tablename__ = "job_notify"
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"),
                                        primary_key=True)
    rules: Mapped[Any] = mapped_column(JSON)


class ProjectNotify(Base):
    """A project's rules for its jobs that give none of their own."""

    __tablename__ = "project_notify"
    project_id: Mapped[int] = mapped_column(ForeignKey("project.id", ondelete="CASCADE"),
                                            primary_key=True)
    rules: Mapped[Any] = mapped_column(JSON)


class Notification(Base):
    """One message to send: pending until sent, failed once it has been tried too often."""

    __tablename__ = "notification"
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    job_id: Mapped[int | None] = mapped_column(Id, nullable=True)   # no key: jobs are archived
    event: Mapped[str] = mapped_column(String(16))          # finished | frame_dead | job_dead
    channel: Mapped[str] = mapped_column(String(16))        # email | webhook
    target: Mapped[str] = mapped_column(String(2048))       # an address or a URL
    body: Mapped[Any] = mapped_column(JSON)                 # what is sent (the webhook's JSON)
    state: Mapped[str] = mapped_column(String(16))          # pending | sent | failed
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[float] = mapped_column(Float)           # not tried again before this
    claimed_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_notification_due", "next_at",
                            postgresql_where=text("state = 'pending'"),
                            sqlite_where=text("state = 'pending'")),)


# Retention looks for the oldest finished jobs: without this index, a scan of every job.
JOB_FINISHED_INDEX = Index("ix_job_finished", Job.__table__.c.finished_at,
                           postgresql_where=text("state = 'FINISHED'"),
                           sqlite_where=text("state = 'FINISHED'"))


class RestoredJob(Base):
    """A job brought back from an archive file: read-only, archived again after retention."""

    __tablename__ = "restored_job"
    job_id: Mapped[int] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"),
                                        primary_key=True)
    file: Mapped[str] = mapped_column(String(512))
    restored_at: Mapped[float] = mapped_column(Float)
