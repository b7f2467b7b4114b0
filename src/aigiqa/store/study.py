"""StudyStore: the one place that reads and writes the subjective study's tables.

Everything goes through SQLAlchemy constructs (no SQL built from strings) and works on SQLite and
PostgreSQL. Rules the web app relies on:

- a subject's trials are rated strictly in order: the current trial is the one at position
  ``count(ratings of the subject)``; only it may be rated (another trial → :class:`TrialConflict`);
- a rating is unique per trial and per (subject, submission id): a replay (same submission id or
  same trial) inserts nothing and returns the stored rating, so the answer equals the first one;
- :meth:`StudyStore.submit_rating` returns only after its transaction has committed;
- the trials of a paired-comparison study (``StudyInfo.mode == "pairs"``) take choices through
  :class:`aigiqa.store.study_pairs.PairStore`, never ratings;
- on SQLite, writers queue (``BEGIN IMMEDIATE`` after a ``flock`` of ``<file>.writelock``, see
  :mod:`aigiqa.store.sqlite_writes`) instead of failing on a stale read snapshot.

Connections: ``pool_size`` pooled connections kept open (none opened and closed under load: on
PostgreSQL each costs a SCRAM authentication). Tokens are stored as sha256 digests only, looked
up through the unique index on the digest and confirmed with ``hmac.compare_digest`` (a timing
difference could only reveal bits of a digest, never of the token).

Split out: the rules, errors and values handed out (:mod:`~aigiqa.store.study_domain`, all
importable from here), set-up writes (:mod:`~aigiqa.store.study_setup`), admin queries
(:mod:`~aigiqa.store.study_admin`), tables (:mod:`~aigiqa.store.study_models`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, or_, select

from aigiqa.store import study_admin, study_setup
from aigiqa.store.engine import make_engine
from aigiqa.store.lru import LruMap
from aigiqa.store.sqlite_writes import WRITE_OPTION, queue_sqlite_writers
from aigiqa.store.study_domain import (
    SUBMISSION_ID_MAX_LENGTH,
    SUBMISSION_ID_PATTERN,
    TRIAL_KINDS,
    PlannedTrial,
    RatingValueError,
    StoredRating,
    StudyError,
    StudyInfo,
    SubjectPlan,
    SubjectRef,
    SubjectState,
    TrialConflict,
    TrialNotFound,
    TrialView,
    check_rating_value,
    check_submission_id,
    hash_token,
    is_token,
    iso_utc,
    new_token,
)
from aigiqa.store.study_models import (
    PairStudy,
    Prompt,
    Rating,
    StudyBase,
    StudyDatabase,
    StudyImage,
    StudySession,
    Subject,
    Trial,
)
from aigiqa.store.study_models import Study as StudyRow
from aigiqa.store.study_writes import insert_current, touch_session

__all__ = ["PLAN_CACHE_SIZE", "POOL_OVERFLOW", "POOL_SIZE", "SUBJECT_CACHE_SIZE", "TRIAL_KINDS",
           "SUBMISSION_ID_MAX_LENGTH", "SUBMISSION_ID_PATTERN",
           "PlannedTrial", "RatingValueError", "StoredRating", "StudyError", "StudyInfo",
           "StudyStore", "SubjectRef", "SubjectState", "TrialConflict", "TrialNotFound",
           "TrialView", "hash_token", "new_token"]

#: Pooled connections kept per StudyStore (and process) by default.
POOL_SIZE = 16
#: Extra connections allowed beyond the pool (opened and closed on demand) as a safety valve.
POOL_OVERFLOW = 4
#: Subjects (token → ids, study settings) kept per process.
SUBJECT_CACHE_SIZE = 4096
#: Subjects' plans (their trials: image path, prompt …; session bounds) kept per process.
PLAN_CACHE_SIZE = 1024
_RATING = Rating.__table__


class StudyStore:
    """Data access of the study tables on one database (path, URL, or an Engine it does not own).

    The study tables (:class:`~aigiqa.store.study_models.StudyBase`; no score table) are created
    if missing. Use as a context manager or ``close()``.
    """

    def __init__(self, url_or_path: str | Path | None = None, *, engine: Engine | None = None,
                 pool_size: int = POOL_SIZE):
        self._owns_engine = engine is None
        self._studies: dict[int, StudyInfo] = {}
        self._by_token = LruMap(SUBJECT_CACHE_SIZE)  # token digest → SubjectRef
        self._plans = LruMap(PLAN_CACHE_SIZE)  # subject id → SubjectPlan
        self.engine = engine if engine is not None else make_engine(
            url_or_path, pool_size=pool_size, max_overflow=POOL_OVERFLOW)
        # Only on an engine of its own: hooks must be installed before the first connection.
        self._write_lock = queue_sqlite_writers(self.engine) if self._owns_engine else None
        StudyBase.metadata.create_all(self.engine)

    def close(self) -> None:
        if self._owns_engine:
            self.engine.dispose()
        if self._write_lock is not None:
            self._write_lock.close()

    def warm_up(self, n: int) -> None:
        """Open up to ``n`` pooled connections now (first requests then find them open)."""
        conns = []
        try:
            for _ in range(n):
                conns.append(self.engine.connect())
                conns[-1].exec_driver_sql("SELECT 1")
        finally:
            for conn in conns:
                conn.close()

    def __enter__(self) -> StudyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends (BEGIN IMMEDIATE on SQLite, after
        the file's write lock)."""
        lock = nullcontext() if self._write_lock is None else self._write_lock.hold()
        with self.engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with lock, conn.begin():
                yield conn

    # Databases and studies (set-up) -----------------------------------------------------------
    def add_database(self, db) -> int:
        """Store a :class:`~aigiqa.databases.base.Database` (images, prompts, generators,
        hyper-parameters, released main target); returns its id. Known (name, root): reused,
        new images added."""
        with self._write() as conn:
            return study_setup.store_database(conn, db)

    def insert_study(self, *, name: str, database_id: int, scale: tuple[float, float, float],
                     labels: Sequence[str], design: str, ratings_per_image: int,
                     session_size: int, n_training: int, n_repeats: int, seed: int,
                     plan: dict[str, list[PlannedTrial]]) -> tuple[int, str, dict[str, str]]:
        """Store a planned study in one transaction; ``plan`` maps subject label → trials in
        order. Returns (study id, admin token, {subject label: token}); tokens are not stored."""
        with self._write() as conn:
            return study_setup.store_study(
                conn, name=name, database_id=database_id, scale=scale, labels=labels,
                design=design, ratings_per_image=ratings_per_image, session_size=session_size,
                n_training=n_training, n_repeats=n_repeats, seed=seed, plan=plan)

    def _study_info(self, conn: Connection, study_id: int) -> StudyInfo:
        """A study's settings (they never change once planned: cached by id)."""
        cached = self._studies.get(study_id)
        if cached is not None:
            return cached
        s = conn.execute(select(StudyRow.__table__, StudyDatabase.root.label("root"),
                                PairStudy.allow_ties).join(
            StudyDatabase, StudyDatabase.id == StudyRow.database_id).outerjoin(
            PairStudy, PairStudy.study_id == StudyRow.id).where(StudyRow.id == study_id)).one()
        info = StudyInfo(id=s.id, name=s.name, scale_lo=s.scale_lo, scale_hi=s.scale_hi,
                         scale_step=s.scale_step, labels=tuple(json.loads(s.labels)),
                         design=s.design, session_size=s.session_size, database_root=s.root,
                         csrf_key=s.csrf_key, mode="ratings" if s.allow_ties is None else
                         "pairs", allow_ties=bool(s.allow_ties))
        self._studies[study_id] = info
        return info

    def study_ids(self) -> list[int]:
        """Ids of every stored study, oldest first."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(StudyRow.id).order_by(StudyRow.id)).scalars())

    def study(self, study_id: int) -> StudyInfo:
        """A study's settings (StudyError if unknown)."""
        with self.engine.connect() as conn:
            if conn.execute(select(StudyRow.id).where(StudyRow.id == study_id)).first() is None:
                raise StudyError(f"no study with id {study_id}")
            return self._study_info(conn, study_id)

    def study_by_admin_token(self, token: str) -> StudyInfo | None:
        """The study whose admin token this is, or None."""
        if not is_token(token):
            return None
        digest = hash_token(token)
        with self.engine.connect() as conn:
            row = conn.execute(select(StudyRow.id, StudyRow.admin_token_hash).where(
                StudyRow.admin_token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.admin_token_hash, digest):
                return None
            return self._study_info(conn, row.id)

    def subject_by_token(self, token: str) -> SubjectRef | None:
        """The subject whose personal token this is, or None."""
        if not is_token(token):
            return None
        digest = hash_token(token)
        cached = self._by_token.get(digest)  # tokens never change: found once, kept
        if cached is not None:
            return cached
        with self.engine.connect() as conn:
            row = conn.execute(select(Subject.id, Subject.label, Subject.study_id,
                                      Subject.token_hash).where(
                Subject.token_hash == digest)).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                return None
            ref = SubjectRef(id=row.id, label=row.label,
                             study=self._study_info(conn, row.study_id))
        self._by_token.put(digest, ref)
        return ref

    # A subject's trials -----------------------------------------------------------------------
    def state(self, subject_id: int) -> SubjectState:
        """The subject's progress and current trial (the first one not rated)."""
        with self.engine.connect() as conn:  # one query (the rating count), the cached plan
            return self._plan(conn, subject_id).state(self._done(conn, subject_id))

    def _plan(self, conn: Connection, subject_id: int) -> SubjectPlan:
        """The subject's trials and sessions (fixed once planned: cached)."""
        plan = self._plans.get(subject_id)
        if plan is None:
            rows = conn.execute(
                select(Trial.id, Trial.position, Trial.kind, Trial.session, Trial.note,
                       Trial.image_id, StudyImage.path, Prompt.text)
                .join(StudyImage, StudyImage.id == Trial.image_id)
                .outerjoin(Prompt, Prompt.id == StudyImage.prompt_id)
                .where(Trial.subject_id == subject_id).order_by(Trial.position)).all()
            bounds = {n: (a, b) for n, a, b in conn.execute(select(
                StudySession.number, StudySession.first_position, StudySession.last_position)
                .where(StudySession.subject_id == subject_id))}
            if [r.position for r in rows] != list(range(len(rows))):
                raise StudyError(f"subject {subject_id}: trial positions are not 0..n-1")
            trials = tuple(TrialView(id=r.id, position=r.position, kind=r.kind,
                                     session=r.session, prompt=r.text, note=r.note,
                                     image_path=r.path) for r in rows)
            plan = SubjectPlan.of(trials, tuple(r.image_id for r in rows), bounds)
            if plan.total:  # a subject id seen committed has its whole plan
                self._plans.put(subject_id, plan)
        return plan

    @staticmethod
    def _done_query(subject_id: int):
        return select(func.count()).select_from(Rating).where(
            Rating.subject_id == subject_id).scalar_subquery()

    def _done(self, conn: Connection, subject_id: int) -> int:
        return int(conn.execute(select(self._done_query(subject_id))).scalar_one())

    def cached_trial(self, token: str, trial_id: int) -> tuple[SubjectRef, TrialView] | None:
        """(subject, trial) from the caches alone, or None (not seen yet, or not theirs): no
        database access, safe on an event loop."""
        if not is_token(token):
            return None
        subject = self._by_token.get(hash_token(token))
        plan = None if subject is None else self._plans.get(subject.id)
        position = None if plan is None else plan.positions.get(trial_id)
        return None if position is None else (subject, plan.trials[position])

    def trial(self, subject_id: int, trial_id: int) -> TrialView | None:
        """The subject's trial with this id, or None if it is not theirs."""
        plan = self._plans.get(subject_id)  # trials never change once planned
        if plan is None:
            with self.engine.connect() as conn:
                plan = self._plan(conn, subject_id)
        position = plan.positions.get(trial_id)
        return None if position is None else plan.trials[position]

    def submit_rating(self, subject: SubjectRef, trial_id: int, value: Any,
                      submission_id: str) -> tuple[StoredRating, bool]:
        """Store a rating of the subject's current trial; returns (stored rating, replayed).

        Returns only after COMMIT. A replay (same submission id, or a trial already rated)
        stores nothing and returns the stored rating with ``replayed=True``. Raises
        RatingValueError (bad score or submission id), TrialNotFound (not this subject's trial),
        TrialConflict (not the current trial, or the submission id was used for another trial).
        """
        stored, replayed, _ = self.submit_and_state(subject, trial_id, value, submission_id)
        return stored, replayed

    def submit_and_state(self, subject: SubjectRef, trial_id: int, value: Any,
                         submission_id: str) -> tuple[StoredRating, bool, SubjectState]:
        """:meth:`submit_rating`, plus the subject's state read in the same transaction
        (returned only after COMMIT). A subject of a pairs study has no rating trial."""
        if subject.study.mode != "ratings":
            raise TrialNotFound("this is a paired-comparison study: its trials take choices")
        v = check_rating_value(subject.study, value)
        check_submission_id(submission_id)
        with self._write() as conn:
            plan = self._plan(conn, subject.id)
            position = plan.positions.get(trial_id)
            if position is None:
                raise TrialNotFound(f"no trial {trial_id} for this subject")
            trial = plan.trials[position]
            now = datetime.now(UTC)
            # One statement: insert only if the trial is the current one (position = count of
            # the subject's ratings) and nothing unique is taken.
            inserted = insert_current(conn, Rating, {
                "trial_id": trial_id, "subject_id": subject.id,
                "image_id": plan.image_ids[position], "value": v, "kind": trial.kind,
                "session": trial.session, "submission_id": submission_id, "created_at": now},
                current=self._done_query(subject.id) == position)
            if inserted is not None:
                touch_session(conn, subject.id, plan.bounds, trial.session, trial.position, now)
                result, replayed, done = self._stored(inserted), False, position + 1
            else:
                # Not the current trial, or the insert hit a unique constraint (a replay, a
                # concurrent submission that committed first, or a reused submission id).
                done = self._done(conn, subject.id)
                result = self._existing(conn, subject.id, trial, done, submission_id)
                replayed = True
            state = plan.state(done)
        return result, replayed, state

    def _existing(self, conn: Connection, subject_id: int, trial: TrialView, done: int,
                  submission_id: str) -> StoredRating:
        """The stored rating a non-inserting submission answers with; TrialConflict if none."""
        rows = conn.execute(select(_RATING).where(
            Rating.subject_id == subject_id,
            or_(Rating.submission_id == submission_id, Rating.trial_id == trial.id))).all()
        same_id = next((r for r in rows if r.submission_id == submission_id), None)
        if same_id is not None:
            if same_id.trial_id != trial.id:
                raise TrialConflict(f"submission id {submission_id!r} was already used "
                                    f"for trial {same_id.trial_id}")
            return self._stored(same_id)
        rated = next((r for r in rows if r.trial_id == trial.id), None)
        if rated is not None:  # rated already (trials are rated in order): a replay
            return self._stored(rated)
        raise TrialConflict(f"trial {trial.id} is not the current trial (position "
                            f"{trial.position}, current {done})")

    @staticmethod
    def _stored(r) -> StoredRating:
        return StoredRating(trial_id=r.trial_id, value=float(r.value), kind=r.kind,
                            session=r.session, submission_id=r.submission_id,
                            created_at=iso_utc(r.created_at))

    # Admin ------------------------------------------------------------------------------------
    def progress(self, study_id: int) -> pd.DataFrame:
        """One row per subject: subject, done, total, sessions, sessions_done, last (time)."""
        with self.engine.connect() as conn:
            return study_admin.progress(conn, study_id)

    def ratings_frame(self, study_id: int) -> pd.DataFrame:
        """Raw ratings of a study: subject, image, score, session, kind, time (ISO 8601 UTC),
        ordered by subject and trial position."""
        with self.engine.connect() as conn:
            return study_admin.ratings_frame(conn, study_id)

    def save_mos(self, study_id: int, table: pd.DataFrame, method: str) -> int:
        """Replace the stored MOS of (study, method) by ``table`` (image, mos, std, ci95, n)."""
        with self._write() as conn:
            return study_admin.replace_mos(conn, study_id, table, method)

    def count_ratings(self, study_id: int | None = None) -> int:
        """Number of stored ratings (of one study, or all)."""
        with self.engine.connect() as conn:
            return study_admin.count_ratings(conn, study_id)

