"""Tables for worker licences, metered overage, usage accounting and supervisor metrics.

They live on the same declarative `Base` as the rest of the schema; migration 0002 creates
them.  Money is stored as whole micro-dollars (BigInteger), never as a float: a rate of
$0.10 per worker-hour is 100000, and sums in SQL stay exact (migration 0003 converted the
float columns of 0002).  Nothing here is written on the dispatch path: licence terms change on request, overage
minutes and usage are written by periodic tasks, metric points by the sampler.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, Float, Index, Integer, LargeBinary, String,
                        text)
from sqlalchemy.orm import Mapped, mapped_column

from supervisor.store.models import Attempt, Base, Id

# Usage accounting reads ended attempts past a watermark on stopped_at; without this index
# every pass would scan the whole attempt table.  Partial: running attempts have no stop time.
ATTEMPT_STOPPED_INDEX = Index("ix_attempt_stopped_at", Attempt.__table__.c.stopped_at,
                              postgresql_where=text("stopped_at IS NOT NULL"),
                              sqlite_where=text("stopped_at IS NOT NULL"))


class LicenceTerms(Base):
    """Licence settings changed at run time (one row, id 1).  A NULL column means "as the
    supervisor's configuration says"."""

    __tablename__ = "licence_terms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    installed_set: Mapped[bool] = mapped_column(Boolean, default=False)
    installed: Mapped[int | None] = mapped_column(Integer, nullable=True)   # NULL: no cap
    metered: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    sink: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # micro-dollars per worker-hour
    rate_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_reason: Mapped[str] = mapped_column(String(512), default="")
    updated_at: Mapped[float] = mapped_column(Float, default=0.0)
    # Minute start (epoch s) up to which a running meter counted overage: a supervisor that
    # restarts rebuilds the minutes from there to its own first one from attempt times.
    metered_through: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class OverageMinute(Base):
    """One wall-clock minute in which more workers held a licence than were prepaid."""

    __tablename__ = "overage_minute"
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True)   # epoch s, minute start
    workers: Mapped[int] = mapped_column(Integer)        # overage: busy beyond installed
    busy: Mapped[int] = mapped_column(Integer)           # peak workers holding a licence
    installed: Mapped[int] = mapped_column(Integer)
    rate_micros: Mapped[int] = mapped_column(BigInteger)     # micro-$ per worker-hour then
    batch_id: Mapped[str | None] = mapped_column(String(40), nullable=True)

    __table_args__ = (Index("ix_overage_minute_unbatched", "minute",
                            postgresql_where=text("batch_id IS NULL"),
                            sqlite_where=text("batch_id IS NULL")),)


class OverageBatch(Base):
    """A report of overage minutes for the metering sink; `payload` is sent unchanged on every
    retry so the sink can deduplicate by `id`."""

    __tablename__ = "overage_batch"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float)
    period_start: Mapped[int] = mapped_column(BigInteger)
    period_end: Mapped[int] = mapped_column(BigInteger)
    worker_minutes: Mapped[int] = mapped_column(Integer)
    cost_micros: Mapped[int] = mapped_column(BigInteger)     # the batch's cost in micro-$
    payload: Mapped[Any] = mapped_column(JSON)
    # pending | accepted | refused (403: parked until metering is re-authorized)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    tries: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(1024), default="")
    accepted_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_overage_batch_state", "state", "created_at"),)


class UsageDay(Base):
    """Usage per UTC day, project and user, kept after the jobs are cleaned away."""

    __tablename__ = "usage_day"
    day: Mapped[str] = mapped_column(String(10), primary_key=True)      # YYYY-MM-DD (UTC)
    project: Mapped[str] = mapped_column(String(128), primary_key=True)
    user: Mapped[str] = mapped_column(String(128), primary_key=True)
    slot_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    worker_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)


class UsageSeen(Base):
    """Attempts already counted, near the watermark: a completion that arrives late (a worker
    that reconnects with it) is still counted once."""

    __tablename__ = "usage_seen"
    frame_id: Mapped[int] = mapped_column(Id, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    stopped_at: Mapped[float] = mapped_column(Float, index=True)


class MetricLayout(Base):
    """The series packed in a metric sample, in order (a new layout when the set changes)."""

    __tablename__ = "metric_layout"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    names: Mapped[Any] = mapped_column(JSON)


class MetricSample(Base):
    """Supervisor metrics at one moment: raw samples (res 0), per-minute (60) and per-hour
    (3600) roll-ups.  `data` packs every series of `layout` as little-endian float32: the
    value for a raw sample, (mean, min, max) for a roll-up of `n` raw samples.  One row per
    moment instead of one per series keeps a year of history about ten times smaller."""

    __tablename__ = "metric_sample"
    res: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[float] = mapped_column(Float, primary_key=True)      # epoch s (bucket start)
    n: Mapped[int] = mapped_column(Integer, default=1)
    layout: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
