"""Writes the study store's answer tables share (ratings and pair choices): the conditional
insert that makes a submission idempotent, and the session marks.

Functions on an open write transaction (the stores hold it).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, func, literal, select, update

from aigiqa.store.study_domain import StudyError
from aigiqa.store.study_models import StudySession


def insert_current(conn: Connection, model, row: dict, current):
    """INSERT INTO <model's table> … SELECT <row> WHERE <current> ON CONFLICT DO NOTHING (any
    unique constraint), on SQLite and PostgreSQL; the inserted row (all columns), or None if
    nothing was inserted."""
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        raise StudyError(f"the study store supports SQLite and PostgreSQL, not {name}")
    table = model.__table__
    columns = list(row)
    values = select(*(literal(row[c], type_=table.c[c].type) for c in columns)).where(current)
    stmt = dialect_insert(model).from_select(columns, values).on_conflict_do_nothing()
    return conn.execute(stmt.returning(*table.c)).first()


def touch_session(conn: Connection, subject_id: int, bounds: dict[int, tuple[int, int]],
                  number: int, position: int, now: datetime) -> None:
    """Mark the session started (its first trial) or finished (its last); else nothing."""
    first, last = bounds.get(number, (None, None))
    if position not in (first, last):
        return
    where = (StudySession.subject_id == subject_id, StudySession.number == number)
    values = {}
    if position == first:
        values["started_at"] = func.coalesce(StudySession.started_at, now)
    if position == last:
        values["finished_at"] = now
    conn.execute(update(StudySession).where(*where).values(**values))
