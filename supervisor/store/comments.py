"""Comments on jobs and hosts: add, list, delete, and the counts the job and host rows show."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from supervisor.store.errors import ControlError
from supervisor.store.models import Comment, Host, Job

MAX_TEXT = 10_000           # characters; the same as cuefarm.protocol.MAX_COMMENT


def clean_text(text: str) -> str:
    """The text of a comment as stored (surrounding blank space removed); ControlError for an
    empty or over-long one."""
    text = text.strip()
    if not text:
        raise ControlError("a comment needs some text", "text")
    if len(text) > MAX_TEXT:
        raise ControlError(f"a comment is at most {MAX_TEXT:,} characters; this one has "
                           f"{len(text):,}", "text")
    return text


def subject(conn: Connection, job_id: int | None, host: str | None) -> tuple[str, int]:
    """("job", id) or ("host", id) of what a comment request names; ControlError when it names
    both, neither, or something that does not exist."""
    if (job_id is None) == (host is None):
        raise ControlError("name a job or a host (one of them) for the comments", "job_id")
    if job_id is not None:
        if conn.execute(select(Job.id).where(Job.id == job_id)).first() is None:
            raise ControlError(f"no job with id {job_id}", "job_id", "not_found")
        return "job", job_id
    found = conn.execute(select(Host.id).where(Host.name == host)).scalar()
    if found is None:
        raise ControlError(f"no host named {host!r}", "host", "not_found")
    return "host", found


def add(conn: Connection, kind: str, subject_id: int, author: str, text: str,
        now: float) -> int:
    """Store a comment on job or host `subject_id`; return its id."""
    values = {"job_id": subject_id} if kind == "job" else {"host_id": subject_id}
    return conn.execute(insert(Comment).values(author=author[:128], text=clean_text(text),
                                               created_at=now, **values)
                        .returning(Comment.id)).scalar_one()


def rows(conn: Connection, kind: str, subject_id: int) -> list[dict[str, Any]]:
    """The comments on one job or host, oldest first: id, author, text, created_at, and the
    job_id or host they are on."""
    column = Comment.job_id if kind == "job" else Comment.host_id
    q = (select(Comment.id, Comment.job_id, Host.name.label("host"), Comment.author,
                Comment.text, Comment.created_at)
         .outerjoin(Host, Host.id == Comment.host_id)
         .where(column == subject_id).order_by(Comment.created_at, Comment.id))
    return [dict(r._mapping) for r in conn.execute(q)]


def find(conn: Connection, comment_id: int) -> Any:
    """A comment's id, author, job_id and host_id; ControlError when there is none."""
    row = conn.execute(select(Comment.id, Comment.author, Comment.job_id, Comment.host_id)
                       .where(Comment.id == comment_id)).first()
    if row is None:
        raise ControlError(f"no comment with id {comment_id}", "id", "not_found")
    return row


def remove(conn: Connection, comment_id: int) -> None:
    conn.execute(delete(Comment).where(Comment.id == comment_id))


def job_count():
    """The number of comments on the job of the row (a column for job_rows)."""
    return (select(func.count()).where(Comment.job_id == Job.id)
            .correlate(Job).scalar_subquery().label("comments"))


def host_count():
    """The number of comments on the host of the row (a column for host_rows)."""
    return (select(func.count()).where(Comment.host_id == Host.id)
            .correlate(Host).scalar_subquery().label("comments"))
