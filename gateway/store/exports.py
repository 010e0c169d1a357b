"""The rows of Bulk Data exports (``export_jobs``, ``export_files``) and their outbox row."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from gateway.store.repository import Session
from gateway.store.schema import export_files, export_jobs, outbox

__all__ = ["delete_expired", "delete_job", "file_content", "files_of", "job_of", "new_job"]


def new_job(
    session: Session, job_id: str, owner: str | None, request: str, now: int, expires: int
) -> None:
    """The job, and the outbox row that makes a worker run it, in the session's transaction."""
    connection = session.connection
    connection.execute(
        insert(export_jobs).values(
            id=job_id, owner=owner, request=request, state="accepted", created=now, expires=expires
        )
    )
    connection.execute(
        insert(outbox).values(
            kind="export",
            key=f"export:{job_id}",
            subscription=None,
            res_type="Bulk",
            res_id=job_id,
            version_id=1,
            state="pending",
            attempts=0,
            next_at=now,
            created=now,
        )
    )
    session.enqueued = True  # wake this process's worker at commit


def job_of(session: Session, job_id: str) -> dict[str, Any] | None:
    row = (
        session.connection.execute(select(export_jobs).where(export_jobs.c.id == job_id))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def delete_job(session: Session, job_id: str) -> None:
    connection = session.connection
    connection.execute(delete(export_files).where(export_files.c.job_id == job_id))
    connection.execute(delete(export_jobs).where(export_jobs.c.id == job_id))


def files_of(session: Session, job_id: str) -> list[tuple[str, int, int]]:
    """(type, part, count) of a job's files, in order."""
    rows = session.connection.execute(
        select(export_files.c.res_type, export_files.c.part, export_files.c.count)
        .where(export_files.c.job_id == job_id)
        .order_by(export_files.c.res_type, export_files.c.part)
    )
    return [(t, int(p), int(c)) for t, p, c in rows]


def file_content(session: Session, job_id: str, res_type: str, part: int) -> bytes | None:
    content = session.connection.execute(
        select(export_files.c.content).where(
            export_files.c.job_id == job_id,
            export_files.c.res_type == res_type,
            export_files.c.part == part,
        )
    ).scalar()
    return bytes(content) if content is not None else None


def delete_expired(session: Session, now: int) -> int:
    """Every export past its expiry, with its files; how many."""
    connection = session.connection
    expired = [
        row[0]
        for row in connection.execute(select(export_jobs.c.id).where(export_jobs.c.expires < now))
    ]
    for job_id in expired:
        delete_job(session, job_id)
    return len(expired)
