"""The study store's admin queries: progress, raw ratings, stored MOS, counts.

Functions on an open connection (:class:`aigiqa.store.study.StudyStore` opens it; ``replace_mos``
needs a write transaction).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import Connection, func, insert, select

from aigiqa.chunking import chunks
from aigiqa.store.study_domain import iso_utc
from aigiqa.store.study_models import Rating, StudyImage, StudyMos, StudySession, Subject, Trial
from aigiqa.store.study_models import Study as StudyRow
from aigiqa.store.study_setup import CHUNK, image_ids

PROGRESS_COLUMNS = ["subject", "done", "total", "sessions", "sessions_done", "last"]
RATING_COLUMNS = ["subject", "image", "score", "session", "kind", "time"]


def progress(conn: Connection, study_id: int, answers=Rating) -> pd.DataFrame:
    """One row per subject: subject, done, total, sessions, sessions_done, last (time);
    ``answers``: the table of the study's answers (ratings, or pair choices)."""
    subjects = conn.execute(select(Subject.id, Subject.label).where(
        Subject.study_id == study_id).order_by(Subject.label)).all()
    totals = dict(conn.execute(select(Trial.subject_id, func.count()).join(
        Subject, Subject.id == Trial.subject_id).where(Subject.study_id == study_id)
        .group_by(Trial.subject_id)).all())
    done = {sid: (n, last) for sid, n, last in conn.execute(
        select(answers.subject_id, func.count(), func.max(answers.created_at)).join(
            Subject, Subject.id == answers.subject_id).where(
            Subject.study_id == study_id).group_by(answers.subject_id))}
    sessions = {sid: (n, fin) for sid, n, fin in conn.execute(
        select(StudySession.subject_id, func.count(), func.count(
            StudySession.finished_at)).join(Subject, Subject.id == StudySession.subject_id)
        .where(Subject.study_id == study_id).group_by(StudySession.subject_id))}
    rows = []
    for sid, label in subjects:
        n, last = done.get(sid, (0, None))
        n_sessions, finished = sessions.get(sid, (0, 0))
        rows.append({"subject": label, "done": int(n), "total": int(totals.get(sid, 0)),
                     "sessions": int(n_sessions), "sessions_done": int(finished),
                     "last": iso_utc(last)})
    return pd.DataFrame(rows, columns=PROGRESS_COLUMNS)


def ratings_frame(conn: Connection, study_id: int) -> pd.DataFrame:
    """Raw ratings of a study: subject, image, score, session, kind, time (ISO 8601 UTC),
    ordered by subject and trial position."""
    query = (select(Subject.label, StudyImage.name, Rating.value, Rating.session,
                    Rating.kind, Rating.created_at)
             .join(Subject, Subject.id == Rating.subject_id)
             .join(StudyImage, StudyImage.id == Rating.image_id)
             .join(Trial, Trial.id == Rating.trial_id)
             .where(Subject.study_id == study_id)
             .order_by(Subject.label, Trial.position))
    rows = [(s, i, float(v), int(n), k, iso_utc(t)) for s, i, v, n, k, t in conn.execute(query)]
    return pd.DataFrame(rows, columns=RATING_COLUMNS)


def replace_mos(conn: Connection, study_id: int, table: pd.DataFrame, method: str) -> int:
    """Replace the stored MOS of (study, method) by ``table`` (image, mos, std, ci95, n);
    returns the number of rows stored."""
    db_id = conn.execute(select(StudyRow.database_id).where(
        StudyRow.id == study_id)).scalar_one()
    ids = image_ids(conn, db_id)
    conn.execute(StudyMos.__table__.delete().where(
        StudyMos.study_id == study_id, StudyMos.method == method))
    now = datetime.now(UTC)

    def num(x) -> float | None:
        return None if x is None or not math.isfinite(float(x)) else float(x)

    rows = [{"study_id": study_id, "image_id": ids[str(r.image)], "method": method,
             "mos": float(r.mos), "std": num(r.std), "ci95": num(r.ci95),
             "n": int(r.n), "computed_at": now} for r in table.itertuples()]
    for chunk in chunks(rows, CHUNK):
        conn.execute(insert(StudyMos), list(chunk))
    return len(rows)


def count_ratings(conn: Connection, study_id: int | None = None) -> int:
    """Number of stored ratings (of one study, or all)."""
    query = select(func.count()).select_from(Rating)
    if study_id is not None:
        query = query.join(Subject, Subject.id == Rating.subject_id).where(
            Subject.study_id == study_id)
    return int(conn.execute(query).scalar_one())
